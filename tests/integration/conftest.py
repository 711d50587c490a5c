"""Integration tests run a real Celery worker process (tests/integration/worker.py) against the test database."""

from tests.integration.worker import _worker_idle_before_teardown, celery_worker, worker_uploads  # noqa: F401  (fixtures)
