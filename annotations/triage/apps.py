from django.apps import AppConfig


class TriageConfig(AppConfig):
    name = "annotations.triage"
    label = "triage"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The recall API returns each cluster's guidance note with the cases it recalls from that cluster.
        from annotations.recall.api import GUIDANCE_PROVIDERS  # noqa: PLC0415
        from annotations.triage.selectors import recall_guidance  # noqa: PLC0415

        if recall_guidance not in GUIDANCE_PROVIDERS:
            GUIDANCE_PROVIDERS.append(recall_guidance)
