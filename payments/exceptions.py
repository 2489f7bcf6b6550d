from smartpay.api.errors import ApiError, Conflict


class CustomerExists(Conflict):
    code = "customer_exists"
    title = "Customer already exists"


class CurrencyNotSupported(ApiError):
    status_code = 422
    code = "currency_not_supported"
    title = "Currency not supported by the gateway"


class CaptureExceedsAuthorization(ApiError):
    status_code = 422
    code = "capture_exceeds_authorization"
    title = "Capture amount exceeds the authorized amount"


class RefundExceedsPayment(ApiError):
    status_code = 422
    code = "refund_exceeds_payment"
    title = "Refund exceeds what is left to refund"


class PaymentBusy(Conflict):
    code = "payment_busy"
    title = "Another operation on this payment is in progress"


class GatewayUnavailableError(ApiError):
    status_code = 503
    code = "gateway_unavailable"
    title = "Gateway unavailable"


class GatewayTimeout(ApiError):
    status_code = 504
    code = "gateway_timeout"
    title = "Gateway did not answer in time"


class GatewayRejected(ApiError):
    status_code = 422
    code = "gateway_rejected"
    title = "The gateway refused the request"


class CardNotSaved(ApiError):
    status_code = 422
    code = "card_not_saved"
    title = "The card could not be saved"


class CustomerEmailRequired(ApiError):
    status_code = 422
    code = "customer_email_required"
    title = "The customer needs an email"
