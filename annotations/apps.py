from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "annotations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Receivers import models, which is possible only once the app registry is ready.
        from annotations import receivers  # noqa: F401, PLC0415
