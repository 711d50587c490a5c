from django.apps import AppConfig


class TriageConfig(AppConfig):
    name = "annotations.triage"
    label = "triage"
    default_auto_field = "django.db.models.BigAutoField"
