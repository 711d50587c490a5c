import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedbackhub.settings")
application = get_wsgi_application()


def _warm_up() -> None:
    """Load the active embedding model before serving (RECALL_WARMUP), so the first recall request or search does not
    wait for it. Only web processes import this module; tests and management commands (but runserver) never do."""
    import logging  # noqa: PLC0415

    from django.conf import settings  # noqa: PLC0415

    if not settings.RECALL_WARMUP:
        return
    try:
        from annotations.recall import querying  # noqa: PLC0415

        querying.warm_up()
    except Exception:  # a web process without the model still serves every other page
        logging.getLogger(__name__).exception("could not warm up the embedding model")


_warm_up()
