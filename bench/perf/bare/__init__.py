"""The bare reference: the durable minimum of each measured path on the same stack (Django, DRF, psycopg,
PostgreSQL, gunicorn sync workers, `requests`), so that SmartPay's figures have something to be divided by."""
