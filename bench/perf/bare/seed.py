"""Seed the bare reference: `python -m bench.perf.bare.seed <raw api key> <customer id> <credits>`.

Run with BARE_DATABASE_URL set; migrates first. Idempotent: the key and account are created or reset.
"""

import hashlib
import os
import sys


def seed(raw_key: str, customer_id: str, credits: int) -> None:
    from django.core.management import call_command

    from bench.perf.bare.core.models import ApiKey, CreditAccount

    call_command("migrate", verbosity=0, interactive=False)
    ApiKey.objects.get_or_create(
        key_hash=hashlib.sha256(raw_key.encode()).hexdigest(), defaults={"client_name": "bench"}
    )
    CreditAccount.objects.update_or_create(customer_id=customer_id, defaults={"balance": credits})


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.perf.bare.settings")
    import django

    django.setup()
    raw_key, customer_id, credits = argv
    seed(raw_key, customer_id, int(credits))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
