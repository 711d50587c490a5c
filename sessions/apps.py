from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    """Conversation logs. Labelled ``conversations``: ``sessions`` is taken by django.contrib.sessions."""

    name = "sessions"
    label = "conversations"
    verbose_name = "Conversation logs"
    default_auto_field = "django.db.models.BigAutoField"
