"""Helpers for tests that race real threads against the database."""

import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import connection
from rest_framework.test import APIClient

# The PostgreSQL server CI uses is shared: a test opens at most this many threads (each one
# connection), so with a live server's handler threads a test stays near two dozen connections.
MAX_THREADS = 10


def run_at_once(count: int, work):
    """Run `work(index)` on `count` threads released together; returns the results in index order.

    Each thread closes its own database connection when done."""
    if count > MAX_THREADS:
        raise ValueError(f"at most {MAX_THREADS} threads per test (the database server is shared)")
    barrier = threading.Barrier(count)

    def run(index):
        try:
            barrier.wait(timeout=10)
            return work(index)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def api_client(api_key: str) -> APIClient:
    """A fresh client per thread (test clients are not thread-safe)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client
