from django.apps import AppConfig


class RecallConfig(AppConfig):
    name = "annotations.recall"
    label = "recall"
    default_auto_field = "django.db.models.BigAutoField"
