from smartpay.api.errors import ApiError, Conflict


class InsufficientCredits(ApiError):
    status_code = 402
    code = "insufficient_credits"
    title = "Not enough credits"


class PlanNotAvailable(ApiError):
    status_code = 422
    code = "plan_not_available"
    title = "This plan cannot be bought"


class ConsumptionReferenceUsed(Conflict):
    code = "consumption_reference_used"
    title = "Credits were already consumed with this reference"
