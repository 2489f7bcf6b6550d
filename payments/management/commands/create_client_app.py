from django.core.management.base import BaseCommand

from payments.services.clients import api_key_issue, client_app_create


class Command(BaseCommand):
    help = (
        "Create a client app and print its first API key alone on the last line. The key is sk_test_ "
        "while the gateways are the sandbox (GATEWAY_MODE=sandbox) and sk_live_ in live mode."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--webhook-url", default="")
        parser.add_argument("--test-key", action="store_true", help="Issue an sk_test_ key even in live mode.")

    def handle(self, *args, name, webhook_url, test_key, **options):
        client_app = client_app_create(name=name, webhook_url=webhook_url)
        issued = api_key_issue(client_app=client_app, label="initial", live=False if test_key else None)
        self.stdout.write(f"Client app {client_app.id} ({client_app.name}) created.")
        self.stdout.write(f"Webhook signing secret: {client_app.webhook_secret}")
        self.stdout.write("API key (shown once, store it now):")
        self.stdout.write(issued.raw_key)
