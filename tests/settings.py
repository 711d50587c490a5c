"""Settings for the test suite: the project's settings with Redis state of the suite's own.

The cache, the Celery broker queue and the outbox's coalescing marks of a test run live in a Redis database that no
running instance uses: ``TEST_REDIS_URL``, or by default the app's Redis server with the next database number. The
suite empties that database when it starts (tests/conftest.py) and never touches the app's, so ``make test`` beside
a running ``make run`` neither drops its queued tasks nor reads its cache.
"""

from urllib.parse import urlsplit, urlunsplit

from feedbackhub.settings import *  # noqa: F403
from feedbackhub.settings import CACHES, REDIS_URL, env

APP_REDIS_URL = REDIS_URL


def _next_database(url: str) -> str:
    parts = urlsplit(url)
    current = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(current + 1) % 16}"))


REDIS_URL = env("TEST_REDIS_URL", default=_next_database(APP_REDIS_URL))
if REDIS_URL == APP_REDIS_URL:
    raise RuntimeError(f"TEST_REDIS_URL must name another Redis database than the app's REDIS_URL ({REDIS_URL})")
CACHES = {"default": {**CACHES["default"], "LOCATION": REDIS_URL}}
CELERY_BROKER_URL = REDIS_URL
