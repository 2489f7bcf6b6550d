"""SmartPay settings.

Every value that differs between a laptop, CI and production comes from the environment through
django-environ, read here and nowhere else. `.env.example` documents each variable.
Nothing here reads the clock or talks to the network at import time.
"""

import re
from datetime import timedelta
from decimal import Decimal
from email.utils import parseaddr
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local `.env` is optional; real deployments pass variables in the process environment.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production-0123456789"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# How the gateways (and the simulators) reach this service, for webhooks and return URLs.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

# `sandbox`: adapters talk to the built-in simulators unless a base URL is set explicitly.
GATEWAY_MODE = env.str("GATEWAY_MODE", default="sandbox" if DEBUG else "live")
if GATEWAY_MODE not in ("sandbox", "live"):
    raise ImproperlyConfigured("GATEWAY_MODE must be 'sandbox' or 'live'.")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "anymail",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "payments",
    "payments.gateways.simulator",
    "credits",
    "billing",
    "notifications",
    "reporting",
]

MIDDLEWARE = [
    "smartpay.middleware.RequestIdMiddleware",
    "reporting.metrics.RequestMetricsMiddleware",  # Prometheus request latency (reporting/prom.py)
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "smartpay.middleware.BodySizeLimitMiddleware",
    "smartpay.middleware.NulCharacterMiddleware",
    "smartpay.middleware.ApiTimezoneMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "smartpay.staff_security.StaffTwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

# --- Staff accounts (smartpay/staff_security.py) ---------------------------------------------------
# Staff who can move money or change configuration must pass a TOTP code (django-otp) after their
# password; the first time they enrol an authenticator app and get ten one-time recovery codes.
# Default: required whenever DEBUG is off.
STAFF_2FA_REQUIRED = env.bool("STAFF_2FA_REQUIRED", default=not DEBUG)
OTP_TOTP_ISSUER = "SmartPay"
# Failed logins (django-axes): after AXES_FAILURE_LIMIT failures for one username from one address,
# that pair is locked out for AXES_COOLOFF_MINUTES (429). A success resets the count.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_MINUTES = env.int("AXES_COOLOFF_MINUTES", default=15)
AXES_COOLOFF_TIME = timedelta(minutes=AXES_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "smartpay.staff_security.client_ip"  # REMOTE_ADDR: never a header a client sets
AXES_VERBOSE = False
# Staff sessions last a working day and end with the browser; cookies are HttpOnly, SameSite=Lax,
# and Secure whenever DEBUG is off (see the DEBUG-off block below).
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

ROOT_URLCONF = "smartpay.urls"
WSGI_APPLICATION = "smartpay.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False  # services own their transactions
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several threads (runserver, simulators delivering webhooks) share one file: wait for locks.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "smartpay.cache.RedisCache",  # one redis client per pool (smartpay/cache.py)
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "America/Lima"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Request bodies larger than this answer 413 before any view reads them.
MAX_REQUEST_BODY_BYTES = env.int("MAX_REQUEST_BODY_BYTES", default=256 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES

# --- Security (production) -------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Health probes come from inside the network over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)

# --- REST framework ---------------------------------------------------------------------------
# Requests a client app may make per minute, writes (POST, PUT, PATCH, DELETE) and reads counted
# apart; staff set an app's own limits in the admin. Over them: 429 with Retry-After.
API_RATE_LIMIT_WRITE_PER_MINUTE = env.int("API_RATE_LIMIT_WRITE_PER_MINUTE", default=6000)
API_RATE_LIMIT_READ_PER_MINUTE = env.int("API_RATE_LIMIT_READ_PER_MINUTE", default=30000)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["smartpay.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["smartpay.auth.IsClientApp"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["smartpay.api.parsers.StrictJSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["smartpay.auth.ClientAppRateThrottle"],
    "DEFAULT_METADATA_CLASS": "smartpay.api.base.ApiMetadata",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "smartpay.api.errors.problem_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "SmartPay API",
    "DESCRIPTION": (
        "One API over Culqi and Mercado Pago: payments, customers, credits and invoices.\n\n"
        "Every error is `application/problem+json` (RFC 9457) with a stable `code`, except two that "
        "the HTTP server answers before the application sees the request: **414** for a request line "
        "(method, path and query) over 8190 bytes and **431** for a header line over 8190 bytes or "
        "more than 100 headers (gunicorn.conf.py). A body over 256 KiB is a 413 problem; a chunked "
        "body is read whole or answered 411; a client app over its rate limit gets a 429 problem with "
        "`Retry-After`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "smartpay.api.schema.add_problem_responses",
    ],
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
}

# --- Idempotency ------------------------------------------------------------------------------
IDEMPOTENCY_RETENTION_HOURS = max(24, env.int("IDEMPOTENCY_RETENTION_HOURS", default=24))
# A repeat of a key whose first request is still running waits this long for it, then gets 409.
IDEMPOTENCY_WAIT_SECONDS = env.int("IDEMPOTENCY_WAIT_SECONDS", default=10)
# A key still `in_progress` after this long belongs to a dead process: a repeat then answers the
# object the first request created, or (nothing created) runs in its place. It must outlast the
# longest live request, a payment failing over across the routing's gateways: per gateway, retries
# start within GATEWAY_RETRY_MAX_TOTAL_SECONDS (4 s) and the last try can take connect + read
# timeouts (3.05 + 20 s), so about 27 s each and 54 s for two. 120 s leaves more than twice that,
# and a client retrying after a crash still gets its answer within two minutes.
IDEMPOTENCY_LEASE_SECONDS = max(1, env.int("IDEMPOTENCY_LEASE_SECONDS", default=120))

# --- Celery -----------------------------------------------------------------------------------
# Unset broker: tasks run eagerly in the calling process (zero-setup default).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=CELERY_BROKER_URL or "") or None
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# Nothing reads task results (work is recorded in the database): publishing then never touches the
# result store, which is on the broker's Redis in compose and would stall each publish ~20 s in its
# reconnect loop when Redis is down. `smartpay.ping` keeps its result (round-trip checks).
CELERY_TASK_IGNORE_RESULT = True
# Redis broker. Work queued after a commit must fail fast when Redis is down (the enqueue helper in
# smartpay/queueing.py then logs it and the sweeps queue it later), never hang the request:
# short connect timeout, a socket timeout for a broker that vanished without closing the connection
# (kombu waits forever otherwise), and one publish retry (a pooled connection gone stale).
# visibility_timeout: tasks are acknowledged when they finish (acks_late), and Redis gives a message
# nobody acknowledged within it to another worker. That includes retries a worker holds until their
# countdown, at most RETRY_CAP_SECONDS (3600 s, payments/tasks.py and billing/tasks.py) plus their
# run time: a shorter timeout would run those retries twice. 2 h covers that with margin. A worker
# killed mid-task thus gets its message back only after 2 h, but the sweeps (webhook events, billing,
# credits renewals) re-queue what it left undone within minutes, and every task is safe to run twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 7200, "socket_connect_timeout": 2, "socket_timeout": 10}
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
CELERY_BEAT_SCHEDULE: dict = {
    "purge-idempotency-records": {"task": "payments.purge_idempotency_records", "schedule": 3600.0},
    "settle-unknown-payments": {"task": "payments.settle_unknown_payments", "schedule": 60.0},
    "expire-stale-actions": {"task": "payments.expire_stale_actions", "schedule": 60.0},
    "credits-expire-lots": {"task": "credits.expire_lots", "schedule": 60.0},
    "credits-record-expiring-notices": {"task": "credits.record_expiring_notices", "schedule": 3600.0},
    "credits-run-auto-renewals": {"task": "credits.run_auto_renewals", "schedule": 300.0},
    # Webhook events a broker outage or a lost worker left `received` are queued again.
    "payments-sweep-webhook-events": {"task": "payments.sweep_webhook_events", "schedule": 120.0},
    # 06:00 in Lima, written in CELERY_TIMEZONE (UTC): Peru is UTC-5 all year (no daylight saving).
    "payments-reconcile-yesterday": {"task": "payments.reconcile_yesterday", "schedule": crontab(hour=11, minute=0)},
}

# --- Credits -------------------------------------------------------------------------------------
# `credits.low_balance` is told when a customer's available credits drop below this (a customer's
# preferences may set their own threshold).
CREDITS_LOW_BALANCE_THRESHOLD = env.int("CREDITS_LOW_BALANCE_THRESHOLD", default=20)

# --- Email (django-anymail) -------------------------------------------------------------------
POSTMARK_SERVER_TOKEN = env.str("POSTMARK_SERVER_TOKEN", default="")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="SmartPay <no-reply@smartpay.local>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Who receives Django's error emails (mail_admins): "Ops <ops@example.pe>,dev@example.pe".
ADMINS = [parseaddr(address) for address in env.list("ADMINS", default=[])]
# Basic-auth credentials ("user:password") Postmark's tracking webhook (/anymail/postmark/tracking/)
# must send; empty: that URL refuses every post.
ANYMAIL_WEBHOOK_SECRET = env.str("ANYMAIL_WEBHOOK_SECRET", default="")
ANYMAIL = {"WEBHOOK_SECRET": ANYMAIL_WEBHOOK_SECRET} if ANYMAIL_WEBHOOK_SECRET else {}
if POSTMARK_SERVER_TOKEN:
    EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    ANYMAIL["POSTMARK_SERVER_TOKEN"] = POSTMARK_SERVER_TOKEN
else:
    # Development: headers and text in the console, attachments by name and size only (smartpay/mail.py).
    EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="smartpay.mail.ConsoleEmailBackend")

# --- Gateways ---------------------------------------------------------------------------------
# In sandbox mode and with no explicit base, adapters talk to this service's own simulators.
_SANDBOX = GATEWAY_MODE == "sandbox"
CULQI_API_BASE = env.str(
    "CULQI_API_BASE", default=f"{PUBLIC_BASE_URL}/sandbox/culqi" if _SANDBOX else "https://api.culqi.com"
)
CULQI_SECURE_BASE = env.str(
    "CULQI_SECURE_BASE", default=f"{PUBLIC_BASE_URL}/sandbox/culqi" if _SANDBOX else "https://secure.culqi.com"
)
CULQI_PUBLIC_KEY = env.str("CULQI_PUBLIC_KEY", default="pk_test_sandbox" if _SANDBOX else "")
CULQI_SECRET_KEY = env.str("CULQI_SECRET_KEY", default="sk_test_sandbox" if _SANDBOX else "")
CULQI_WEBHOOK_USERNAME = env.str("CULQI_WEBHOOK_USERNAME", default="")
CULQI_WEBHOOK_PASSWORD = env.str("CULQI_WEBHOOK_PASSWORD", default="")
MERCADOPAGO_API_BASE = env.str(
    "MERCADOPAGO_API_BASE",
    default=f"{PUBLIC_BASE_URL}/sandbox/mercadopago" if _SANDBOX else "https://api.mercadopago.com",
)
MERCADOPAGO_PUBLIC_KEY = env.str("MERCADOPAGO_PUBLIC_KEY", default="TEST-sandbox-public-key" if _SANDBOX else "")
MERCADOPAGO_ACCESS_TOKEN = env.str("MERCADOPAGO_ACCESS_TOKEN", default="TEST-sandbox-access-token" if _SANDBOX else "")
MERCADOPAGO_WEBHOOK_SECRET = env.str("MERCADOPAGO_WEBHOOK_SECRET", default="sandbox-webhook-secret" if _SANDBOX else "")
GATEWAY_CONNECT_TIMEOUT = env.float("GATEWAY_CONNECT_TIMEOUT", default=3.05)
GATEWAY_READ_TIMEOUT = env.float("GATEWAY_READ_TIMEOUT", default=20.0)
# Ordered gateways per currency (first healthy one wins for new payments and hosted checkout).
GATEWAY_ROUTING = {
    "PEN": env.list("GATEWAY_ROUTING_PEN", default=["culqi", "mercadopago"]),
    "USD": env.list("GATEWAY_ROUTING_USD", default=["culqi", "mercadopago"]),
}
# Circuit breakers per gateway (state shared through the cache: Redis in production).
CIRCUIT_FAILURE_THRESHOLD = env.int("CIRCUIT_FAILURE_THRESHOLD", default=5)
CIRCUIT_ERROR_RATE_PERCENT = env.int("CIRCUIT_ERROR_RATE_PERCENT", default=50)
CIRCUIT_MIN_CALLS = env.int("CIRCUIT_MIN_CALLS", default=20)
CIRCUIT_WINDOW_SECONDS = env.int("CIRCUIT_WINDOW_SECONDS", default=60)
CIRCUIT_COOL_DOWN_SECONDS = env.int("CIRCUIT_COOL_DOWN_SECONDS", default=30)
# Retries of calls that were not processed (connect errors, 429, 503): full-jitter exponential backoff.
GATEWAY_RETRY_MAX_TRIES = env.int("GATEWAY_RETRY_MAX_TRIES", default=3)
GATEWAY_RETRY_BASE_SECONDS = env.float("GATEWAY_RETRY_BASE_SECONDS", default=0.2)
GATEWAY_RETRY_MAX_TOTAL_SECONDS = env.float("GATEWAY_RETRY_MAX_TOTAL_SECONDS", default=4.0)
# Unknown outcomes: ask the gateway on a backoff schedule; proven absent after this long: failed.
SETTLE_GIVE_UP_HOURS = env.int("SETTLE_GIVE_UP_HOURS", default=24)
# A `requires_action` payment (3-D Secure) not confirmed within this many minutes fails (`action_expired`).
PAYMENT_ACTION_TTL_MINUTES = env.int("PAYMENT_ACTION_TTL_MINUTES", default=30)
# A second charge for a payment that already has one (a late answer from the gateway it failed over
# from, say) is refunded at its gateway automatically; false: only raised for staff.
STRAY_CHARGE_AUTO_REFUND = env.bool("STRAY_CHARGE_AUTO_REFUND", default=True)
# How long a hosted checkout session can be paid; the payment fails when it expires.
CHECKOUT_SESSION_HOURS = env.int("CHECKOUT_SESSION_HOURS", default=24)
# Mercado Pago webhook signature timestamps older/newer than this are refused (0: no check).
MERCADOPAGO_WEBHOOK_TOLERANCE_SECONDS = env.int("MERCADOPAGO_WEBHOOK_TOLERANCE_SECONDS", default=600)
# Mercado Pago's older IPN (`?topic=payment&id=…`) cannot be signed: it is trusted only through a
# re-fetch, so it is off unless enabled; when on, repeats of one (topic, id) within the window are
# one delivery, and each source address may send at most this many a minute (then 429).
MERCADOPAGO_IPN_ENABLED = env.bool("MERCADOPAGO_IPN_ENABLED", default=False)
MERCADOPAGO_IPN_DEDUPE_SECONDS = env.int("MERCADOPAGO_IPN_DEDUPE_SECONDS", default=300)
MERCADOPAGO_IPN_RATE_PER_MINUTE = env.int("MERCADOPAGO_IPN_RATE_PER_MINUTE", default=120)
# The simulators post webhooks back to PUBLIC_BASE_URL the way the real gateways do.
SIMULATOR_DELIVER_WEBHOOKS = env.bool("SIMULATOR_DELIVER_WEBHOOKS", default=_SANDBOX)

# --- Events out (signed POSTs to client apps' webhook URLs, notifications/delivery.py) ----------
EVENTS_CONNECT_TIMEOUT = env.float("EVENTS_CONNECT_TIMEOUT", default=3.0)
EVENTS_READ_TIMEOUT = env.float("EVENTS_READ_TIMEOUT", default=5.0)
# Webhook URLs on loopback, link-local, private (…) addresses are refused, at delivery and when an
# app sets its URL; the sandbox's own receiver is on such an address, hence true there.
EVENTS_ALLOW_PRIVATE_URLS = env.bool("EVENTS_ALLOW_PRIVATE_URLS", default=_SANDBOX)
EVENTS_REQUIRE_HTTPS = env.bool("EVENTS_REQUIRE_HTTPS", default=not _SANDBOX)
# One dispatch run stops after this many events sent (or skipped), or this many seconds.
EVENTS_DISPATCH_MAX_EVENTS = env.int("EVENTS_DISPATCH_MAX_EVENTS", default=200)
EVENTS_DISPATCH_MAX_SECONDS = env.int("EVENTS_DISPATCH_MAX_SECONDS", default=30)
# Every 10 s; a run still queued when the next one is due is dropped (`expires`): the next one does its work.
CELERY_BEAT_SCHEDULE["notifications-dispatch-events"] = {
    "task": "notifications.dispatch_events",
    "schedule": 10.0,
    "options": {"expires": 10},
}

# --- Web Push to payers' browsers (VAPID, notifications/push.py) --------------------------------
# The application server key pair (base64url: 65-byte uncompressed P-256 public point, 32-byte
# private scalar) and the contact sent in the VAPID JWT (`sub`). Without both keys pushing is off.
WEBPUSH_VAPID_PUBLIC_KEY = env.str("WEBPUSH_VAPID_PUBLIC_KEY", default="")
WEBPUSH_VAPID_PRIVATE_KEY = env.str("WEBPUSH_VAPID_PRIVATE_KEY", default="")
WEBPUSH_VAPID_SUBJECT = env.str("WEBPUSH_VAPID_SUBJECT", default="mailto:soporte@smartpay.local")

# --- Billing ---------------------------------------------------------------------------------
# The issuer of every invoice (one RUC for the whole service). The default RUC is SUNAT's beta
# test RUC: documents issued with it are not valid; set your own in production.
BILLING_ISSUER_RUC = env.str("BILLING_ISSUER_RUC", default="20000000001")
BILLING_ISSUER_NAME = env.str("BILLING_ISSUER_NAME", default="SMARTPAY DEMO S.A.C.")
BILLING_ISSUER_ADDRESS = env.str("BILLING_ISSUER_ADDRESS", default="AV. JOSE LARCO 123, MIRAFLORES, LIMA")
BILLING_ISSUER_UBIGEO = env.str("BILLING_ISSUER_UBIGEO", default="150122")
BILLING_ISSUER_ESTABLISHMENT = env.str("BILLING_ISSUER_ESTABLISHMENT", default="0000")
# Series per document type: boletas start with B, facturas with F; a credit note's series starts
# with the letter of the document it corrects (SUNAT errors 2116/2399).
BILLING_SERIES_BOLETA = env.str("BILLING_SERIES_BOLETA", default="B001")
BILLING_SERIES_FACTURA = env.str("BILLING_SERIES_FACTURA", default="F001")
BILLING_SERIES_CREDIT_NOTE_BOLETA = env.str("BILLING_SERIES_CREDIT_NOTE_BOLETA", default="BC01")
BILLING_SERIES_CREDIT_NOTE_FACTURA = env.str("BILLING_SERIES_CREDIT_NOTE_FACTURA", default="FC01")
_BILLING_SERIES = {
    "BILLING_SERIES_BOLETA": "B",
    "BILLING_SERIES_FACTURA": "F",
    "BILLING_SERIES_CREDIT_NOTE_BOLETA": "B",
    "BILLING_SERIES_CREDIT_NOTE_FACTURA": "F",
}
for _name, _letter in _BILLING_SERIES.items():
    if not re.fullmatch(rf"{_letter}[A-Z0-9]{{3}}", globals()[_name]):
        raise ImproperlyConfigured(f"{_name} must be 4 capital letters or digits starting with {_letter}.")
if len({globals()[_name] for _name in _BILLING_SERIES}) != len(_BILLING_SERIES):
    raise ImproperlyConfigured("The four BILLING_SERIES_* must differ: each has its own numbering.")
# IGV as a percentage (prices charged include it).
BILLING_IGV_PERCENT = Decimal(env.str("BILLING_IGV_PERCENT", default="18.00"))
# PEN per USD sent with USD documents where the PSE asks for it (Nubefact's tipo_de_cambio).
BILLING_USD_EXCHANGE_RATE = env.str("BILLING_USD_EXCHANGE_RATE", default="")
# The PSE that submits documents to SUNAT: "" (none: invoices stay `issued` here) or "nubefact".
BILLING_PSE = env.str("BILLING_PSE", default="")
if BILLING_PSE not in ("", "nubefact"):
    raise ImproperlyConfigured("BILLING_PSE must be empty or 'nubefact'.")
NUBEFACT_API_URL = env.str("NUBEFACT_API_URL", default="")
NUBEFACT_API_TOKEN = env.str("NUBEFACT_API_TOKEN", default="")
BILLING_PSE_CONNECT_TIMEOUT = env.float("BILLING_PSE_CONNECT_TIMEOUT", default=5.0)
BILLING_PSE_READ_TIMEOUT = env.float("BILLING_PSE_READ_TIMEOUT", default=30.0)
# Optional XMLDSig signature of the UBL files we keep: PEM private key and certificate files.
BILLING_SIGNING_KEY_FILE = env.str("BILLING_SIGNING_KEY_FILE", default="")
BILLING_SIGNING_CERT_FILE = env.str("BILLING_SIGNING_CERT_FILE", default="")
# Invoice emails' sender (their Postmark stream is the payer emails' PAYER_EMAIL_MESSAGE_STREAM).
BILLING_EMAIL_FROM = env.str("BILLING_EMAIL_FROM", default=DEFAULT_FROM_EMAIL)
# Two API fields are called `document_type` (a profile's DNI/RUC/..., an invoice's boleta/factura/...).
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] = {
    **SPECTACULAR_SETTINGS.get("ENUM_NAME_OVERRIDES", {}),
    "IdentityDocumentTypeEnum": "billing.enums.IdentityDocument",
    "InvoiceDocumentTypeEnum": "billing.enums.DocumentType",
}
# Safety net: issue what a failed handler missed, re-queue stalled submissions and emails, poll SUNAT.
CELERY_BEAT_SCHEDULE["billing-sweep"] = {"task": "billing.sweep", "schedule": 300.0}

# --- Alerts (admin index panel; notifications/alerts.py, rules in notifications/alert_rules.py) ---
# Who is emailed when a new alert opens (warning or critical), once per alert; empty: nobody.
ALERT_EMAILS = env.list("ALERT_EMAILS", default=[])
# A gateway's charge success rate over the last window below this percent raises an alert, once
# the window holds at least the minimum sample of final outcomes.
ALERT_SUCCESS_RATE_WINDOW_MINUTES = env.int("ALERT_SUCCESS_RATE_WINDOW_MINUTES", default=15)
ALERT_SUCCESS_RATE_MIN_PERCENT = env.int("ALERT_SUCCESS_RATE_MIN_PERCENT", default=50)
ALERT_SUCCESS_RATE_MIN_SAMPLE = env.int("ALERT_SUCCESS_RATE_MIN_SAMPLE", default=20)
# Every minute; a run still queued when the next one is due is dropped: the next one does its work.
CELERY_BEAT_SCHEDULE["notifications-evaluate-alerts"] = {
    "task": "notifications.evaluate_alerts",
    "schedule": 60.0,
    "options": {"expires": 60},
}

# --- Emails to payers (receipts, credits notices; notifications/emails.py) ---------------------
# Off: no receipt or notice is written for new events (client apps that email their payers themselves).
PAYER_EMAILS_ENABLED = env.bool("PAYER_EMAILS_ENABLED", default=True)
PAYER_EMAIL_FROM = env.str("PAYER_EMAIL_FROM", default=DEFAULT_FROM_EMAIL)
PAYER_EMAIL_MESSAGE_STREAM = env.str("PAYER_EMAIL_MESSAGE_STREAM", default="outbound")
# Every 2 minutes: payer emails a broker outage left `pending`, or whose retry is due.
CELERY_BEAT_SCHEDULE["notifications-sweep-payer-emails"] = {
    "task": "notifications.sweep_payer_emails",
    "schedule": 120.0,
    "options": {"expires": 120},
}

# --- Reporting (reporting/: dashboard, period reports, rollups, /metrics) ------------------------
# Uploaded report files (period reports) live in the default storage under MEDIA_ROOT.
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
MEDIA_URL = "media/"  # never served directly: downloads go through permission-checked views
REPORT_MAX_DAYS = env.int("REPORT_MAX_DAYS", default=366)  # a longer range is a 400
# The weekly and monthly finance reports (XLSX attached) go to these addresses; empty: nobody.
FINANCE_REPORT_EMAILS = env.list("FINANCE_REPORT_EMAILS", default=[])
FINANCE_REPORT_CURRENCIES = env.list("FINANCE_REPORT_CURRENCIES", default=["PEN", "USD"])
# /metrics (Prometheus): allowed with `Authorization: Bearer <METRICS_TOKEN>` when a token is set,
# or from these networks (default: this machine only).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"])
# Rollups of the last days are recomputed every hour (late outcomes, refunds); older days on demand.
REPORTING_ROLLUP_RECENT_DAYS = env.int("REPORTING_ROLLUP_RECENT_DAYS", default=3)
CELERY_BEAT_SCHEDULE["reporting-rollup-recent-days"] = {
    "task": "reporting.rollup_recent_days",
    "schedule": crontab(minute=7),
    "options": {"expires": 3000},
}
# Mondays 07:00 and the 1st 07:30 in Lima (12:00 and 12:30 UTC): last week's and last month's report.
CELERY_BEAT_SCHEDULE["reporting-weekly-report"] = {
    "task": "reporting.send_periodic_reports",
    "schedule": crontab(day_of_week=1, hour=12, minute=0),
    "kwargs": {"schedule": "weekly"},
}
CELERY_BEAT_SCHEDULE["reporting-monthly-report"] = {
    "task": "reporting.send_periodic_reports",
    "schedule": crontab(day_of_month=1, hour=12, minute=30),
    "kwargs": {"schedule": "monthly"},
}

# --- Logging: JSON lines with the request id; secrets and card numbers redacted ----------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "smartpay.logging.RequestIdFilter"},
        "redact": {"()": "smartpay.logging.RedactingFilter"},
    },
    "formatters": {"json": {"()": "smartpay.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
    },
}
