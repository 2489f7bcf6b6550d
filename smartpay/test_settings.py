"""Settings for the test suite: the real settings with test-only defaults for missing variables.

CI passes DATABASE_URL, REDIS_URL and CELERY_BROKER_URL; without them the suite runs on SQLite
with eager tasks. The broker URL is kept aside so the worker test can use it, while the suite
itself runs tasks eagerly (deterministic), exactly as a single process would.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-0123456789abcdef")
os.environ.setdefault("GATEWAY_MODE", "sandbox")

from smartpay.settings import *  # noqa: F403
from smartpay.settings import CELERY_BROKER_URL as _BROKER

TEST_CELERY_BROKER_URL = _BROKER
CELERY_TASK_ALWAYS_EAGER = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PAYER_EMAILS_ENABLED = False  # outbox holds only what a test is about; tests/notifications/test_emails.py: on
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
SECURE_SSL_REDIRECT = False
STATIC_ROOT = None  # no collected files in tests; WhiteNoise serves from the finders
WHITENOISE_USE_FINDERS = True
GATEWAY_RETRY_BASE_SECONDS = 0.01  # keep retry back-off sleeps short in tests
# Report files go to a throwaway directory per test run, never into the checkout.
import tempfile as _tempfile  # noqa: E402

MEDIA_ROOT = _tempfile.mkdtemp(prefix="smartpay-test-media-")

# Two-factor login and lockout have their own tests (tests/foundation/test_staff_security.py), which
# turn them on; elsewhere admin tests log staff in directly.
STAFF_2FA_REQUIRED = False
AXES_ENABLED = False
