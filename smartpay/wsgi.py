import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartpay.settings")
_django = get_wsgi_application()

from smartpay.wsgi_body import ChunkedBodyMiddleware  # noqa: E402 (needs settings)

application = ChunkedBodyMiddleware(_django)
