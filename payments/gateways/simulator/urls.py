"""Simulator routes, mounted at /sandbox/ only when GATEWAY_MODE == "sandbox" (smartpay/urls.py).

/sandbox/culqi/…        api.culqi.com and secure.culqi.com paths (v2), plus the hosted checkout page
/sandbox/mercadopago/…  api.mercadopago.com paths, plus the Checkout Pro page and the 3-D Secure challenge page
/sandbox/control        fault injection
/sandbox/receiver/…     a client app's webhook endpoint, built in: events SmartPay sends, and their list
"""

from django.urls import include, path

from payments.gateways.simulator import control, culqi_views, mercadopago_challenge, mercadopago_views, receiver

app_name = "simulator"

culqi = [
    path("v2/tokens", culqi_views.tokens, name="culqi-tokens"),
    path("v2/tokens/<str:token_id>", culqi_views.token_detail, name="culqi-token"),
    path("v2/charges", culqi_views.charges, name="culqi-charges"),
    path("v2/charges/<str:charge_id>", culqi_views.charge_detail, name="culqi-charge"),
    path("v2/charges/<str:charge_id>/capture", culqi_views.charge_capture, name="culqi-charge-capture"),
    path("v2/refunds", culqi_views.refunds, name="culqi-refunds"),
    path("v2/refunds/<str:refund_id>", culqi_views.refund_detail, name="culqi-refund"),
    path("v2/customers", culqi_views.customers, name="culqi-customers"),
    path("v2/customers/<str:customer_id>", culqi_views.customer_detail, name="culqi-customer"),
    path("v2/cards", culqi_views.cards_view, name="culqi-cards"),
    path("v2/cards/<str:card_id>", culqi_views.card_detail, name="culqi-card"),
    path("v2/orders", culqi_views.orders, name="culqi-orders"),
    path("v2/orders/<str:order_id>", culqi_views.order_detail, name="culqi-order"),
    path("v2/orders/<str:order_id>/confirm", culqi_views.order_confirm, name="culqi-order-confirm"),
    path("checkout/<str:order_id>", culqi_views.checkout_page, name="culqi-checkout-page"),
]

mercadopago = [
    path("v1/card_tokens", mercadopago_views.card_tokens, name="mercadopago-card-tokens"),
    path("v1/card_tokens/<str:token_id>", mercadopago_views.card_token_detail, name="mercadopago-card-token"),
    path("v1/payment_methods/search", mercadopago_views.payment_methods_search, name="mercadopago-payment-methods"),
    path("v1/payments", mercadopago_views.payments, name="mercadopago-payments"),
    path("v1/payments/search", mercadopago_views.payments_search, name="mercadopago-payments-search"),
    path("v1/payments/<str:payment_id>", mercadopago_views.payment_detail, name="mercadopago-payment"),
    path("v1/payments/<str:payment_id>/refunds", mercadopago_views.payment_refunds, name="mercadopago-refunds"),
    path(
        "v1/payments/<str:payment_id>/refunds/<str:refund_id>",
        mercadopago_views.payment_refund_detail,
        name="mercadopago-refund",
    ),
    path("v1/customers", mercadopago_views.customers, name="mercadopago-customers"),
    path("v1/customers/search", mercadopago_views.customers_search, name="mercadopago-customers-search"),
    path("v1/customers/<str:customer_id>", mercadopago_views.customer_detail, name="mercadopago-customer"),
    path("v1/customers/<str:customer_id>/cards", mercadopago_views.customer_cards, name="mercadopago-cards"),
    path(
        "v1/customers/<str:customer_id>/cards/<str:card_id>",
        mercadopago_views.customer_card_detail,
        name="mercadopago-card",
    ),
    path("checkout/preferences", mercadopago_views.preferences, name="mercadopago-preferences"),
    path(
        "checkout/preferences/<str:preference_id>", mercadopago_views.preference_detail, name="mercadopago-preference"
    ),
    path("checkout/<str:preference_id>", mercadopago_views.checkout_page, name="mercadopago-checkout-page"),
    path("challenge/<str:payment_id>", mercadopago_challenge.challenge_page, name="mercadopago-challenge"),
]

urlpatterns = [
    path("control", control.control_view, name="control"),
    path("culqi/", include(culqi)),
    path("mercadopago/", include(mercadopago)),
    path("receiver/", receiver.receiver_list, name="receiver-list"),
    path("receiver/<str:app_id>", receiver.receiver_endpoint, name="receiver"),
]
