from django.apps import AppConfig


class InsightsConfig(AppConfig):
    name = "annotations.insights"
    label = "insights"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Receivers import models, which is possible only once the app registry is ready.
        from annotations.insights import receivers  # noqa: F401, PLC0415
