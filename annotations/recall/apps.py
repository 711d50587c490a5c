from django.apps import AppConfig


class RecallConfig(AppConfig):
    name = "annotations.recall"
    label = "recall"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created  # noqa: PLC0415

        from annotations.recall.selectors import apply_session_search_settings  # noqa: PLC0415

        connection_created.connect(apply_session_search_settings, dispatch_uid="recall.session_search_settings")
