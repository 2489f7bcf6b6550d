from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    name = "payments.gateways.simulator"
    label = "simulator"
    verbose_name = "Gateway simulators (sandbox)"
