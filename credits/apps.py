from django.apps import AppConfig


class CreditsConfig(AppConfig):
    name = "credits"
    verbose_name = "Credits"

    def ready(self) -> None:
        # Explicit hooks, not signals: payments calls these inside the transaction that moves the payment.
        from credits import services
        from payments import hooks
        from payments.enums import PaymentPurpose

        hooks.register_success_handler(PaymentPurpose.CREDIT_PURCHASE, services.credit_purchase_on_success)
        hooks.register_refund_handler(PaymentPurpose.CREDIT_PURCHASE, services.credit_purchase_on_refund)
