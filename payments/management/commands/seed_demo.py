from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from payments.models import ApiKey, ClientApp
from payments.services.clients import api_key_issue, api_key_revoke, client_app_create

DEMO_APP_NAME = "Demo client app"
DEMO_KEY_LABEL = "demo (seed_demo)"
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "smartpay-admin"  # noqa: S105 — development only: seed_demo refuses to run with DEBUG off


class Command(BaseCommand):
    help = "Seed demo data (admin login, demo client app). Safe to run again: it rotates the demo key."

    def handle(self, *args, **options):
        from django.conf import settings

        if not settings.DEBUG:
            self.stderr.write("seed_demo only runs with DEBUG=true (it creates a known admin password).")
            raise SystemExit(1)
        with transaction.atomic():
            user_model = get_user_model()
            admin_user, created = user_model.objects.get_or_create(
                username=ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.com"}
            )
            if created:
                admin_user.set_password(ADMIN_PASSWORD)
                admin_user.save()
            client_app = ClientApp.objects.filter(name=DEMO_APP_NAME).first() or client_app_create(name=DEMO_APP_NAME)
            # The raw key is never stored, so each run issues a fresh one and revokes the old demo key.
            for old in ApiKey.objects.filter(client_app=client_app, label=DEMO_KEY_LABEL, revoked_at__isnull=True):
                api_key_revoke(api_key=old)
            issued = api_key_issue(client_app=client_app, label=DEMO_KEY_LABEL, live=False)
            receiver = f"{settings.PUBLIC_BASE_URL}/sandbox/receiver/"
            webhook_note = ""
            if settings.GATEWAY_MODE == "sandbox":
                # Events go to the built-in receiver, unless the developer pointed the app elsewhere.
                if not client_app.webhook_url or client_app.webhook_url.startswith(receiver):
                    client_app.webhook_url = f"{receiver}{client_app.id}"
                    client_app.save(update_fields=["webhook_url", "updated_at"])
                webhook_note = f"{client_app.webhook_url}  (watch: {receiver})"

        self.stdout.write("")
        self.stdout.write(
            f"  Admin:      http://127.0.0.1:8000/admin/  user '{ADMIN_USERNAME}'  password "
            f"'{ADMIN_PASSWORD}'" + ("" if created else " (unless you changed it)")
        )
        self.stdout.write("  API docs:   http://127.0.0.1:8000/api/docs/")
        self.stdout.write(f"  Client app: {client_app.name} ({client_app.id})")
        if webhook_note:
            self.stdout.write(f"  Webhooks:   {webhook_note}")
        self.stdout.write(f"  API key:    {issued.raw_key}")
        self.stdout.write("")
