"""gunicorn settings for ``manage.py serve`` / ``make serve`` (docs/deploy.md). Every value reads the environment.

- Workers: WEB_CONCURRENCY, else 2 x CPUs + 1 (gunicorn's rule of thumb; each worker holds the query encoder,
  about 150 MB). Sync workers: requests are short and the database, not the GIL, is what they wait for.
- Each worker imports feedbackhub.wsgi after the fork (no ``preload_app``: the ONNX runtime and torch keep threads
  that do not survive a fork); the import sends ``web_process_starting``, so the embedding model is loaded before
  the worker accepts its first connection.
- Logs: gunicorn's own to stderr; the access log is the app's (logger ``feedbackhub.request``: JSON with the
  request id), so gunicorn's is off unless GUNICORN_ACCESS_LOG names a file or "-".
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("WEB_THREADS", "1"))
# A request taking longer than this is killed (and logged); slow ones are the exports and imports, which run in
# workers, not here.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Recycle a worker after this many requests (plus jitter), bounding any slow leak.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "500"))
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# The proxy in front (docs/deploy.md) sets X-Forwarded-*; trust it only from these addresses.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
proc_name = "feedbackhub-web"
wsgi_app = "feedbackhub.wsgi:application"


def child_exit(server, worker) -> None:
    """A worker's request metrics files are merged into the totals once it is gone (prometheus-client multiprocess
    mode, feedbackhub/metrics.py)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
