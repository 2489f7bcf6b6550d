"""`POST /api/v1/reports`, `GET /api/v1/reports/{id}` (and its download) for a client app's own data."""

urlpatterns: list = []
