"""Starting and stopping the processes of a run: each in its own process group, all stopped at the end."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from bench.perf import load


class Processes:
    """Every process started for a run; `stop_all` ends them (and their children) however the run ends."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append((name, process))
        return process

    def stop_all(self, grace: float = 10.0) -> None:
        for _, process in reversed(self.started):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _, process in reversed(self.started):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self.started.clear()


def gunicorn_argv(python_bin: Path, wsgi: str, port: int, workers: int = 2) -> list[str]:
    """The same flags as the production image (Dockerfile), sync workers; gunicorn.conf.py is read from cwd."""
    return [
        str(python_bin.parent / "gunicorn"),
        wsgi,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--worker-tmp-dir",
        "/dev/shm",  # noqa: S108 - as the production image (Dockerfile)
        "--timeout",
        "90",
    ]


def wait_until_up(name: str, process: subprocess.Popen, port: int, path: str, timeout: float = 60.0) -> None:
    """Until `path` answers anything at all over HTTP."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} while starting (see its log)")
        try:
            load.send("127.0.0.1", port, load.Request("GET", path), timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{name} did not answer on port {port} within {timeout:.0f} s")


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0
