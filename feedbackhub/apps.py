from django.apps import AppConfig


class FeedbackhubConfig(AppConfig):
    name = "feedbackhub"
    verbose_name = "FeedbackHub core"

    def ready(self) -> None:
        from feedbackhub import checks  # noqa: F401, PLC0415 (registers the database checks)
