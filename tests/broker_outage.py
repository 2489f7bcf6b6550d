"""Redis down, for tests: the Celery app publishes (instead of running tasks eagerly) to a broker on
a closed local port, with its result store there too (as in compose, where both are on one Redis).
Every publish then fails with kombu's OperationalError, exactly as with Redis down, in about 0.1 s:
a refused connection answers at once, and the settings' publish retry policy (one quick retry) is
kept. (Turning publish retries off would be slower: kombu then spends broker_connection_timeout,
4 s, reconnecting inside the publish.)"""

import os
from contextlib import contextmanager

DOWN_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused at once


@contextmanager
def broker_down():
    from celery.backends.redis import RedisBackend

    from smartpay.celery import app

    conf = app.conf
    saved_eager = conf.task_always_eager
    saved_url = os.environ.get("CELERY_BROKER_WRITE_URL")  # in Celery the environment wins over settings
    saved_pools = app._pool, app.amqp._producer_pool
    saved_backends = app._backend_cache, getattr(app._local, "backend", None)  # per thread unless thread-safe
    os.environ["CELERY_BROKER_WRITE_URL"] = DOWN_REDIS_URL
    conf.task_always_eager = False
    app._pool = app.amqp._producer_pool = None
    app._backend = RedisBackend(app=app, url=DOWN_REDIS_URL)
    try:
        yield
    finally:
        # The refused pool is left open (it holds no connection): kombu keeps one pool per URL for
        # the process, and a closed one would be handed to the next test.
        app._pool, app.amqp._producer_pool = saved_pools
        app._backend_cache, app._local.backend = saved_backends
        conf.task_always_eager = saved_eager
        if saved_url is None:
            os.environ.pop("CELERY_BROKER_WRITE_URL", None)
        else:
            os.environ["CELERY_BROKER_WRITE_URL"] = saved_url
