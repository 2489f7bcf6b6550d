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
    help = (
        "Seed demo data (admin login, demo client app, 90 days of payment history). "
        "Safe to run again: the history is not duplicated and the demo key is rotated."
    )

    def add_arguments(self, parser):
        parser.add_argument("--history-payments", type=int, default=3000, help="Demo payments (0: no history).")

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

        if options["history_payments"] > 0:
            self._history(client_app, options["history_payments"])

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

    def _history(self, client_app, payments: int) -> None:
        """Ninety days of demo payments, refunds, invoices and credits (reporting/demo.py), once."""
        from reporting.demo import demo_history_seed

        try:
            history = demo_history_seed(client_app=client_app, payments=payments)
        except RuntimeError as error:  # the history was written but its rollups could not be computed
            self.stderr.write(f"  Demo history: {error}")
            return
        if history.skipped:
            self.stdout.write("  Demo history: already there (not duplicated).")
            return
        self.stdout.write(
            f"  Demo history: {history.payments} payments, {history.refunds} refunds, {history.invoices} invoices, "
            f"{history.credit_notes} credit notes, {history.credit_purchases} credit purchases, "
            f"{history.consumptions} consumptions over 90 days"
            + (f"; {history.rollup_rows} daily rollup rows" if history.rollup_rows is not None else "")
        )
