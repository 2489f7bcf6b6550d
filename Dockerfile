# SmartPay: one image for the API (gunicorn, the default command), the Celery worker and beat.
#   docker build -t smartpay .
#   docker run --env-file .env -p 8000:8000 smartpay
# compose.yaml runs the whole stack (PostgreSQL, Redis, migrate, web, worker, beat).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=smartpay.settings \
    WEB_CONCURRENCY=2

WORKDIR /app

# The service runs as an unprivileged user that cannot modify its own code.
RUN groupadd --system --gid 10001 smartpay \
    && useradd --system --uid 10001 --gid smartpay --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin smartpay

# Runtime dependencies only (requirements-dev.txt stays out of the image), every package pinned with
# its hashes (requirements.lock, `make lock`): a changed or substituted file fails the build.
COPY requirements.lock .
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock

COPY . .

# Admin and Swagger UI assets (drf-spectacular-sidecar: no CDN) are collected into STATIC_ROOT at build
# time and served by WhiteNoise with hashed, compressed names. Settings refuse to load without a
# SECRET_KEY when DEBUG is off, so this RUN alone gets a throwaway one; it is not kept in the image.
# Bytecode is compiled here too: at run time the unprivileged user cannot write __pycache__.
RUN SECRET_KEY=collectstatic-build-only-placeholder DEBUG=false python manage.py collectstatic --noinput \
    && python -m compileall -q .

USER smartpay

EXPOSE 8000

# Liveness: /healthz answers without touching the database. It is exempt from the HTTPS redirect,
# and the probe sends a Host that ALLOWED_HOSTS accepts (its first entry), as a proxy would. It never
# goes through an HTTP proxy that the runtime may have put in the container's environment.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; h = os.environ.get('ALLOWED_HOSTS', '').split(',')[0].strip().lstrip('.'); h = 'localhost' if h in ('', '*') else h; r.build_opener(r.ProxyHandler({})).open(r.Request('http://127.0.0.1:8000/healthz', headers={'Host': h}), timeout=4)"]

# Workers: WEB_CONCURRENCY (gunicorn reads it); more flags through GUNICORN_CMD_ARGS.
# --timeout 90: a payment may wait on two gateways (read timeout and retries, about 54 s at worst);
# a worker killed before the answer is recorded is recovered by the settle job all the same.
CMD ["gunicorn", "smartpay.wsgi:application", "--bind", "0.0.0.0:8000", "--worker-tmp-dir", "/dev/shm", "--timeout", "90"]
