"""`python manage.py check_credit_ledger`: prove cached balances equal the ledger. Exit 1 on drift."""

from django.core.management.base import BaseCommand, CommandError

from credits.selectors import credit_ledger_drift


class Command(BaseCommand):
    help = (
        "Compare each credit account's cached balance with the sum of its ledger rows, the sum of its lots' "
        "remaining credits and its last ledger row; exit 1 if any differ."
    )

    def handle(self, *args, **options):
        drift = credit_ledger_drift()
        for row in drift:
            self.stderr.write(f"drift: {row.describe()}")
        if drift:
            raise CommandError(f"{len(drift)} credit account(s) drifted from their ledger.")
        self.stdout.write(self.style.SUCCESS("Credit ledger OK: every cached balance equals its ledger."))
