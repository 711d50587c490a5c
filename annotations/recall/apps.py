from django.apps import AppConfig


class RecallConfig(AppConfig):
    name = "annotations.recall"
    label = "recall"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Receivers import models, which is possible only once the app registry is ready.
        from annotations.recall import receivers, selectors  # noqa: F401, PLC0415
        from feedbackhub import metrics  # noqa: PLC0415

        metrics.register_gauge("feedbackhub_embedding_backlog", "Feedback items waiting for their vector.",
                               selectors.embedding_backlog)
