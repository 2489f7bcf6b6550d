"""Production settings pass Django's deployment checks, and refuse to start without a secret key.

Each case runs in a fresh Python process with a production-like environment, because settings are
read from the environment once, at import.
"""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]

# Everything settings.py reads is dropped from the inherited environment, so the parent's test
# configuration (DATABASE_URL, brokers, DJANGO_SETTINGS_MODULE=...test_settings) cannot leak in.
_SETTINGS_ENV = re.compile(r"""\benv(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]*)["']""")


def settings_variables() -> set[str]:
    return set(_SETTINGS_ENV.findall((BASE_DIR / "smartpay" / "settings.py").read_text()))


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A complete live configuration, as a deployment would pass it."""
    env = {key: value for key, value in os.environ.items() if key not in settings_variables()}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "smartpay.settings",
            "PYTHONPATH": str(BASE_DIR),
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "ALLOWED_HOSTS": "pay.example.com",
            "CSRF_TRUSTED_ORIGINS": "https://pay.example.com",
            "PUBLIC_BASE_URL": "https://pay.example.com",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
            "GATEWAY_MODE": "live",
            "CULQI_PUBLIC_KEY": "pk_live_" + secrets.token_hex(8),
            "CULQI_SECRET_KEY": "sk_live_" + secrets.token_hex(16),
            "CULQI_WEBHOOK_USERNAME": "culqi",
            "CULQI_WEBHOOK_PASSWORD": secrets.token_urlsafe(24),
            "MERCADOPAGO_PUBLIC_KEY": "APP_USR-" + secrets.token_hex(8),
            "MERCADOPAGO_ACCESS_TOKEN": "APP_USR-" + secrets.token_hex(24),
            "MERCADOPAGO_WEBHOOK_SECRET": secrets.token_hex(32),
            "LOG_LEVEL": "WARNING",
        }
    )
    env.update(overrides)
    return env


def run_python(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_check_deploy_passes_with_production_settings(tmp_path):
    result = run_python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output
    assert "WARNING" not in output and "?: (" not in output


def test_check_deploy_fails_on_a_weak_secret_key(tmp_path):
    # Proves the check above is not vacuous: a short key is a deployment warning.
    env = production_env(tmp_path, SECRET_KEY="short-key")
    result = run_python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


_SHOW_SETTINGS = """
import json
from django.conf import settings
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "SECURE_SSL_REDIRECT": settings.SECURE_SSL_REDIRECT,
    "SECURE_HSTS_SECONDS": settings.SECURE_HSTS_SECONDS,
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": settings.CSRF_COOKIE_SECURE,
    "SECURE_PROXY_SSL_HEADER": settings.SECURE_PROXY_SSL_HEADER,
    "STATICFILES": settings.STORAGES["staticfiles"]["BACKEND"],
    "SANDBOX_URLS": any("sandbox" in str(p.pattern) for p in __import__("smartpay.urls").urls.urlpatterns),
    "CULQI_API_BASE": settings.CULQI_API_BASE,
    "EAGER": settings.CELERY_TASK_ALWAYS_EAGER,
    "STAFF_2FA_REQUIRED": settings.STAFF_2FA_REQUIRED,
    "AXES_ENABLED": settings.AXES_ENABLED,
    "SESSION_COOKIE_HTTPONLY": settings.SESSION_COOKIE_HTTPONLY,
    "SESSION_COOKIE_SAMESITE": settings.SESSION_COOKIE_SAMESITE,
    "SESSION_COOKIE_AGE": settings.SESSION_COOKIE_AGE,
    "SESSION_EXPIRE_AT_BROWSER_CLOSE": settings.SESSION_EXPIRE_AT_BROWSER_CLOSE,
}))
"""


def test_production_defaults_are_the_secure_ones(tmp_path):
    result = run_python(["-c", "import django; django.setup()\n" + _SHOW_SETTINGS], production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "STATICFILES": "whitenoise.storage.CompressedManifestStaticFilesStorage",
        "SANDBOX_URLS": False,  # no gateway simulators in live mode
        "CULQI_API_BASE": "https://api.culqi.com",
        "EAGER": True,  # no broker configured in this environment
        "STAFF_2FA_REQUIRED": True,  # staff who move money or change configuration need a second factor
        "AXES_ENABLED": True,  # failed-login lockout
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_AGE": 8 * 3600,
        "SESSION_EXPIRE_AT_BROWSER_CLOSE": True,
    }


def test_missing_secret_key_with_debug_off_is_a_clear_error(tmp_path):
    env = production_env(tmp_path, SECRET_KEY="")  # set but empty: a local .env cannot fill it in
    result = run_python(["-c", "import smartpay.settings"], env)
    assert result.returncode != 0
    assert "django.core.exceptions.ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off." in result.stderr


def test_manage_py_refuses_to_start_without_secret_key(tmp_path):
    result = run_python(["manage.py", "check"], production_env(tmp_path, SECRET_KEY=""))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "SECRET_KEY" in result.stderr


def test_unknown_gateway_mode_is_a_clear_error(tmp_path):
    result = run_python(["-c", "import smartpay.settings"], production_env(tmp_path, GATEWAY_MODE="production"))
    assert result.returncode != 0
    assert "GATEWAY_MODE must be 'sandbox' or 'live'" in result.stderr


@pytest.mark.parametrize("debug", ["true", "false"])
def test_settings_import_without_network_or_database(tmp_path, debug):
    # Pointing every service at closed ports proves import time talks to none of them.
    env = production_env(
        tmp_path,
        DEBUG=debug,
        DATABASE_URL="postgres://nobody@127.0.0.1:1/none",
        REDIS_URL="redis://127.0.0.1:1/0",
        CELERY_BROKER_URL="redis://127.0.0.1:1/1",
    )
    result = run_python(["-c", "import django; django.setup(); import smartpay.urls"], env, timeout=60)
    assert result.returncode == 0, result.stderr


_COLLECT = """
import sys
import django
from django.conf import settings
django.setup()
settings.STATIC_ROOT = sys.argv[1]
from django.core.management import call_command
call_command("collectstatic", "--noinput", verbosity=0)
"""


def test_collectstatic_works_with_the_production_storage(tmp_path):
    """What the Dockerfile runs at build time: only a throwaway SECRET_KEY and DEBUG=false."""
    env = {key: value for key, value in production_env(tmp_path).items() if key not in settings_variables()}
    env.update(SECRET_KEY="collectstatic-build-only-placeholder", DEBUG="false")
    static_root = tmp_path / "static"
    result = run_python(["-c", _COLLECT, str(static_root)], env, timeout=300)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((static_root / "staticfiles.json").read_text())["paths"]
    bundle = manifest["drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"]
    assert bundle != "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"  # content-hashed name
    assert (static_root / bundle).exists()
    assert (static_root / (bundle + ".gz")).exists()
    assert "admin/css/base.css" in manifest
