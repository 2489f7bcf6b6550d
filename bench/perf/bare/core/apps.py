from django.apps import AppConfig


class BareConfig(AppConfig):
    name = "bench.perf.bare.core"
    label = "bare"
    default_auto_field = "django.db.models.BigAutoField"
