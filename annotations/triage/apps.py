from django.apps import AppConfig


class TriageConfig(AppConfig):
    name = "annotations.triage"
    label = "triage"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Receivers import models, which is possible only once the app registry is ready.
        from annotations.triage import receivers  # noqa: F401, PLC0415
