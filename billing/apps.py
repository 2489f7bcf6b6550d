from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Explicit hooks, not signals: payments calls these inside the transaction that moves the
        # payment (any purpose), after the purpose's own handlers (e.g. the credit grant).
        from billing import services
        from payments import hooks

        hooks.register_success_handler(hooks.ANY_PURPOSE, services.invoice_on_payment_success)
        hooks.register_refund_handler(hooks.ANY_PURPOSE, services.credit_note_on_refund)
