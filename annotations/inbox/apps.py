from django.apps import AppConfig


class InboxConfig(AppConfig):
    """Mentions and the inbox: part of the review core (below the feature apps, which notify through its services),
    an app of its own so that its table has its own migrations."""

    name = "annotations.inbox"
    label = "inbox"
    default_auto_field = "django.db.models.BigAutoField"
