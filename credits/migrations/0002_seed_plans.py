"""Seed the three plans of the contract. Prices are integers in minor units (céntimos / cents)."""

from django.db import migrations

PLANS = [
    # code, name, paid credits, bonus %, PEN céntimos, USD cents
    ("basic", "Basic", 100, 0, 2900, 900),
    ("professional", "Professional", 500, 10, 12900, 3900),
    ("enterprise", "Enterprise", 2000, 20, 44900, 13900),
]


def seed(apps, schema_editor):
    from smartpay.ids import make_id

    CreditPlan = apps.get_model("credits", "CreditPlan")
    for code, name, credits, bonus_percent, price_pen, price_usd in PLANS:
        CreditPlan.objects.get_or_create(
            code=code,
            defaults={
                "id": make_id("plan"),
                "name": name,
                "credits": credits,
                "bonus_percent": bonus_percent,
                "price_pen": price_pen,
                "price_usd": price_usd,
                "validity_days": 365,
                "is_active": True,
            },
        )


def unseed(apps, schema_editor):
    CreditPlan = apps.get_model("credits", "CreditPlan")
    CreditPlan.objects.filter(code__in=[plan[0] for plan in PLANS], purchases__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("credits", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
