from django.apps import AppConfig


class QueuesConfig(AppConfig):
    name = "annotations.queues"
    label = "queues"
    verbose_name = "Review queues"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Receivers import models, which is possible only once the app registry is ready.
        from annotations.queues import receivers  # noqa: F401, PLC0415
