"""Helpers for tests that race real threads against the database."""

import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import connection
from rest_framework.test import APIClient


def run_at_once(count: int, work):
    """Run `work(index)` on `count` threads released together; returns the results in index order.

    Each thread closes its own database connection when done."""
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
