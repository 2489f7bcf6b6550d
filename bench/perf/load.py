"""A small load generator (threads + http.client) and the servers' CPU read from /proc.

gunicorn's sync workers close every connection after one answer, so each request opens its own
connection: the client does exactly what a keep-alive-less caller does, at little CPU of its own.
Bodies and headers are built before the timed part.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RoundResult:
    latencies: list[float]
    elapsed: float
    errors: int  # not the expected answer
    server_errors: int  # 5xx or no answer at all
    statuses: dict[int, int]
    first_error: str = ""


def send(host: str, port: int, request: Request, timeout: float = 60.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(request.method, request.path, body=request.body or None, headers=request.headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def run(
    host: str,
    port: int,
    requests: Sequence[Request],
    *,
    concurrency: int,
    expect: int,
    check: Callable[[bytes], bool] | None = None,
) -> RoundResult:
    """Send every request once, `concurrency` at a time; time each and the whole."""
    lock = threading.Lock()
    cursor = iter(range(len(requests)))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    failures = {"errors": 0, "server": 0, "first": ""}

    def worker() -> None:
        mine: list[float] = []
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                break
            started = time.perf_counter()
            try:
                status, body = send(host, port, requests[index])
            except OSError as error:  # refused, reset, timed out: counted as a server failure
                status, body = 599, repr(error).encode()
            took = time.perf_counter() - started
            ok = status == expect and (check is None or check(body))
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if not ok:
                    failures["errors"] += 1
                    failures["server"] += status >= 500
                    failures["first"] = failures["first"] or f"{status}: {body[:300]!r}"
            if ok:
                mine.append(took)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return RoundResult(latencies, elapsed, failures["errors"], failures["server"], statuses, failures["first"])


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: everything after its closing parenthesis is split.
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """pid and every process below it (gunicorn's master and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    """utime + stime of each live process, in seconds."""
    result = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:  # fields[11], [12] are stat's 14th and 15th: utime, stime
            result[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return result


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two readings by the processes alive at the second (new ones count from zero)."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())
