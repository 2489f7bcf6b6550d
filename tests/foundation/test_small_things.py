"""Small things a newcomer or an operator meets first."""

import os
import subprocess
import sys

import pytest
from django.core import mail
from django.core.mail import EmailMessage

from tests.foundation.test_errors import assert_problem

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/payments/", "/api/v1/nothing-here", "/api/v2/payments", "/api/"])
@pytest.mark.parametrize("debug", [True, False])
def test_an_unknown_api_path_is_a_problem_json_404_with_or_without_debug(api, settings, path, debug):
    settings.DEBUG = debug
    body = assert_problem(api.get(path), 404, "not_found")
    assert "/api/docs/" in body["detail"]


def test_the_console_email_backend_prints_attachments_by_name_and_size_only(settings, capsys):
    settings.EMAIL_BACKEND = "smartpay.mail.ConsoleEmailBackend"
    message = EmailMessage("Su boleta B001-00000001", "Adjuntamos su comprobante.", to=["ana@example.pe"])
    message.attach("B001-00000001.pdf", b"%PDF-1.4" + b"x" * 5000, "application/pdf")
    message.send()
    out = capsys.readouterr().out
    assert "Subject: Su boleta B001-00000001" in out and "Adjuntamos su comprobante." in out
    assert "[attachment: B001-00000001.pdf (application/pdf, 5008 bytes)]" in out
    assert "JVBERi" not in out  # base64 of "%PDF"
    assert mail.outbox == []  # went to the console backend, not the test outbox


def test_admins_are_read_from_the_environment():
    code = "from django.conf import settings; print(settings.ADMINS)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "smartpay.settings", "DEBUG": "true"}
    env["ADMINS"] = "Ops <ops@example.pe>,dev@example.pe"
    out = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"], env=env, capture_output=True, text=True
    )
    assert out.stdout.strip() == "[('Ops', 'ops@example.pe'), ('', 'dev@example.pe')]", out.stderr
