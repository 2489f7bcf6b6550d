"""Settings of the bare reference app. Everything comes from the environment the runner passes.

BARE_DATABASE_URL (PostgreSQL in the benchmark, SQLite in the smoke test), BARE_GATEWAY_BASE (the Culqi
simulator, e.g. http://127.0.0.1:8101/sandbox/culqi), BARE_GATEWAY_SECRET_KEY.
"""

import environ

env = environ.Env()

DEBUG = False
SECRET_KEY = env.str("BARE_SECRET_KEY", default="bare-reference-not-a-secret-0123456789abcdef")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
ROOT_URLCONF = "bench.perf.bare.urls"
WSGI_APPLICATION = "bench.perf.bare.wsgi.application"
INSTALLED_APPS = ["rest_framework", "bench.perf.bare.core"]
MIDDLEWARE: list[str] = []
DATABASES = {"default": env.db("BARE_DATABASE_URL", default="sqlite://:memory:")}
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 60  # as SmartPay (DB_CONN_MAX_AGE default)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "America/Lima"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
}
GATEWAY_BASE = env.str("BARE_GATEWAY_BASE", default="http://127.0.0.1:8101/sandbox/culqi")
GATEWAY_SECRET_KEY = env.str("BARE_GATEWAY_SECRET_KEY", default="sk_test_sandbox")
GATEWAY_CONNECT_TIMEOUT = 3.05  # SmartPay's defaults (GATEWAY_CONNECT_TIMEOUT / GATEWAY_READ_TIMEOUT)
GATEWAY_READ_TIMEOUT = 20.0
LOGGING = {"version": 1, "disable_existing_loggers": False}
