from smartpay.api.errors import Conflict


class CustomerExists(Conflict):
    code = "customer_exists"
    title = "Customer already exists"
