"""compose.yaml, the Dockerfile and .env.example agree with the code they run.

Docker is not needed: the files are parsed, every command they run is resolved against this
checkout (modules importable, management commands existing), and the image's command and health
check are run for real against a production-like configuration.
"""

import ast
import http.client
import importlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from celery import Celery
from celery.app.utils import find_app
from django.core.management import get_commands

from tests.foundation.test_settings_deploy import production_env, settings_variables

BASE_DIR = Path(__file__).resolve().parents[2]
APP_SERVICES = {"migrate", "web", "worker", "beat"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((BASE_DIR / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def command_of(service: dict) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


# --- Dockerfile ----------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (BASE_DIR / "Dockerfile").read_text()
    logical, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        logical.append(current.strip())
        current = ""
    return [(entry.split(None, 1)[0].upper(), entry.split(None, 1)[1]) for entry in logical]


def dockerfile_exec_form(instruction: str) -> list[str]:
    (args,) = [args for name, args in dockerfile_instructions() if name == instruction]
    if instruction == "HEALTHCHECK":
        args = args[args.index("CMD") + 3 :].strip()
    return json.loads(args)


def test_dockerfile_base_user_and_dependencies():
    instructions = dockerfile_instructions()
    names = [name for name, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = [args for name, args in instructions if name == "RUN"]
    assert any("pip install" in run and "--require-hashes" in run and "-r requirements.lock" in run for run in runs)
    assert not any("requirements-dev" in args for _, args in instructions)
    # Runs as a non-root user from the USER line on, and that line comes before the command.
    (user,) = [args for name, args in instructions if name == "USER"]
    assert user not in ("root", "0")
    assert names.index("USER") < names.index("CMD")
    assert any("useradd" in run and user in run for run in runs)
    assert ("EXPOSE", "8000") in instructions


def test_dockerfile_collects_static_with_a_build_only_secret():
    instructions = dockerfile_instructions()
    (collect,) = [args for name, args in instructions if name == "RUN" and "collectstatic" in args]
    assert re.search(r"\bSECRET_KEY=\S+ .*manage\.py collectstatic --noinput", collect)
    # The dummy key is scoped to that RUN: never an ENV/ARG that would stay in the image.
    assert not any(name in ("ENV", "ARG") and "SECRET_KEY" in args for name, args in instructions)


def test_dockerfile_command_serves_the_wsgi_application():
    command = dockerfile_exec_form("CMD")
    assert command[0] == "gunicorn"
    module, attribute = command[1].split(":")
    assert (module, attribute) == ("smartpay.wsgi", "application")
    assert callable(getattr(importlib.import_module(module), attribute))
    assert command[command.index("--bind") + 1] == "0.0.0.0:8000"
    assert "--workers" not in command and "-w" not in command  # gunicorn reads WEB_CONCURRENCY
    assert any(name == "ENV" and "WEB_CONCURRENCY=" in args for name, args in dockerfile_instructions())


def test_dockerfile_healthcheck_probes_healthz():
    healthcheck = dockerfile_exec_form("HEALTHCHECK")
    assert healthcheck[0] == "python"
    assert "http://127.0.0.1:8000/healthz" in healthcheck[-1]


DEV_ONLY_MODULES = {"pytest", "pytest_django", "responses", "hypothesis", "factory", "ruff", "tests", "bench"}


def test_runtime_code_imports_nothing_that_is_missing_from_the_image():
    """The image installs requirements.txt only and leaves tests/ and bench/ out (.dockerignore)."""
    offenders = []
    for source in BASE_DIR.rglob("*.py"):
        relative = source.relative_to(BASE_DIR)
        if relative.parts[0] in (".venv", "tests", "bench") or "migrations" in relative.parts:
            continue
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{relative}: {name}" for name in names if name.split(".")[0] in DEV_ONLY_MODULES]
    assert offenders == []


def test_dockerignore_keeps_local_state_and_secrets_out():
    entries = {line.strip() for line in (BASE_DIR / ".dockerignore").read_text().splitlines()}
    assert {".venv", "db.sqlite3", ".git", ".env", "**/__pycache__", ".pytest_cache", ".ruff_cache"} <= entries
    assert "staticfiles" in entries  # collected inside the image, never copied from a laptop


# --- compose.yaml ----------------------------------------------------------------------------------


def test_compose_has_the_stack(services):
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "beat"}
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])


def _healthcheck_enabled(service: dict) -> bool:
    check = service.get("healthcheck")
    return bool(check) and not check.get("disable") and bool(check.get("test"))


def test_every_service_is_health_checked_or_waits_for_healthy_dependencies(services):
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must state conditions"
        for dependency, rule in depends.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert rule["condition"] in ("service_healthy", "service_completed_successfully")
            if rule["condition"] == "service_healthy":
                assert _healthcheck_enabled(services[dependency]), f"{dependency} has no health check"
        waits_for_healthy = any(rule["condition"] == "service_healthy" for rule in depends.values())
        assert _healthcheck_enabled(service) or waits_for_healthy, name
    # The web service inherits the image's HEALTHCHECK; the others must not (nothing listens on :8000).
    assert "healthcheck" not in services["web"]
    for name in ("migrate", "beat"):
        assert services[name]["healthcheck"] == {"disable": True}
    assert _healthcheck_enabled(services["worker"])


def test_migrations_run_once_before_the_app_starts(services):
    assert command_of(services["migrate"]) == ["python", "manage.py", "migrate", "--noinput"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_every_command_resolves_in_this_checkout(services):
    known_commands = get_commands()
    for name, service in services.items():
        command = command_of(service)
        if not command or name in ("postgres", "redis"):
            continue
        if "manage.py" in command:
            management_command = command[command.index("manage.py") + 1]
            assert management_command in known_commands, f"{name}: no command {management_command!r}"
        elif command[0] == "gunicorn":
            module, attribute = command[1].split(":")
            assert callable(getattr(importlib.import_module(module), attribute)), name
        elif command[0] == "celery":
            app = find_app(command[command.index("-A") + 1])
            assert isinstance(app, Celery), name
            assert app.main == "smartpay"
            assert command[command.index("-A") + 2] in ("worker", "beat")
        else:
            pytest.fail(f"{name}: unexpected command {command}")
    assert command_of(services["worker"])[:4] == ["celery", "-A", "smartpay", "worker"]
    assert command_of(services["beat"])[:4] == ["celery", "-A", "smartpay", "beat"]


def test_web_runs_the_image_command(services):
    assert command_of(services["web"]) == dockerfile_exec_form("CMD")
    assert "8000:8000" in services["web"]["ports"]


def test_app_services_share_one_env_file_and_point_at_compose_services(services):
    for name in APP_SERVICES:
        service = services[name]
        assert service["env_file"] == ".env", name
        assert service["build"] == "."
        environment = service["environment"]
        assert re.match(r"^postgres://[^@]+@postgres:5432/\w+$", environment["DATABASE_URL"])
        for variable in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
            assert environment[variable].startswith("redis://redis:6379/"), variable
        # Cache, broker and results each get their own Redis database.
        assert len({environment[v] for v in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")}) == 3


def test_env_file_is_documented_and_never_committed():
    # compose reads `.env`, which each deployment makes from the committed `.env.example`.
    assert (BASE_DIR / ".env.example").is_file()
    assert ".env" in (BASE_DIR / ".gitignore").read_text().split()
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", ".env"], cwd=BASE_DIR, capture_output=True, check=False
    )
    assert tracked.returncode != 0, ".env must not be committed"


# --- .env.example ------------------------------------------------------------------------------------


def env_example_entries() -> dict[str, list[str]]:
    """{NAME: [description comment lines]} for each `NAME=` or `# NAME=` line of .env.example."""
    lines = (BASE_DIR / ".env.example").read_text().splitlines()
    assignment = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=")
    entries = {}
    for index, line in enumerate(lines):
        match = assignment.match(line)
        if not match:
            continue
        description, above = [], index - 1
        while above >= 0 and lines[above].startswith("#"):
            if not assignment.match(lines[above]):
                description.insert(0, lines[above].lstrip("# "))
            above -= 1
        entries[match.group(1)] = description
    return entries


def test_env_example_documents_every_variable_settings_reads():
    variables = settings_variables()
    assert {"DATABASE_URL", "SECRET_KEY", "DEBUG", "CELERY_BROKER_URL", "GATEWAY_MODE"} <= variables  # parser sanity
    entries = env_example_entries()
    missing = sorted(variables - set(entries))
    assert missing == [], f".env.example does not document: {missing}"
    for name in variables:
        text = " ".join(entries[name])
        assert len(text) > 15, f"{name}: no description"
        assert "default" in text.lower(), f"{name}: the comment does not say its default"


def test_env_example_documents_compose_interpolations(compose):
    raw = (BASE_DIR / "compose.yaml").read_text()
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", raw))
    assert interpolated <= set(env_example_entries())


def test_env_example_holds_no_real_secret():
    entries = {}
    for line in (BASE_DIR / ".env.example").read_text().splitlines():
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            name, value = line.split("=", 1)
            entries[name] = value
    assert entries["SECRET_KEY"] == ""  # each deployment makes its own
    for name, value in entries.items():
        if any(word in name for word in ("SECRET", "TOKEN", "PASSWORD")):
            assert value == "", name


# --- The image's command and health check, run for real --------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_status(port: int, path: str, host: str) -> int:
    """Status of one plain-HTTP GET (redirects are not followed)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host})
        return connection.getresponse().status
    finally:
        connection.close()


def test_image_command_serves_healthz_and_the_healthcheck_passes(tmp_path):
    port = _free_port()
    command = [arg.replace("0.0.0.0:8000", f"127.0.0.1:{port}") for arg in dockerfile_exec_form("CMD")]
    command[0] = str(Path(sys.executable).parent / "gunicorn")
    env = production_env(tmp_path, WEB_CONCURRENCY="1")  # HTTPS redirect on, ALLOWED_HOSTS=pay.example.com
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status = _get_status(port, "/healthz", "pay.example.com")
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
                assert time.monotonic() < deadline, "gunicorn did not start in 30 s"
                time.sleep(0.2)
        assert status == 200
        # Plain HTTP to the API is redirected to HTTPS; a foreign Host header is refused.
        assert _get_status(port, "/api/v1/customers", "pay.example.com") == 301
        assert _get_status(port, "/healthz", "evil.example.net") == 400

        healthcheck = [
            arg.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for arg in dockerfile_exec_form("HEALTHCHECK")
        ]
        healthcheck[0] = sys.executable
        probe = subprocess.run(healthcheck, env=env, capture_output=True, text=True, timeout=30, check=False)
        assert probe.returncode == 0, probe.stderr
        # Docker may inject proxy variables into containers: the probe must not use them.
        proxied = {**env, "HTTP_PROXY": "http://127.0.0.1:1", "http_proxy": "http://127.0.0.1:1", "NO_PROXY": ""}
        probe = subprocess.run(healthcheck, env=proxied, capture_output=True, text=True, timeout=30, check=False)
        assert probe.returncode == 0, probe.stderr
        # With a Host the service does not accept, the probe reports unhealthy (it checks the status).
        wrong = subprocess.run(
            healthcheck, env={**env, "ALLOWED_HOSTS": ""}, capture_output=True, text=True, timeout=30, check=False
        )
        assert wrong.returncode != 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_worker_command_line_is_accepted_by_celery():
    """`celery -A smartpay worker --help` parses the app and the subcommand without a broker."""
    celery = Path(sys.executable).parent / "celery"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "smartpay.test_settings"}
    for subcommand in ("worker", "beat"):
        result = subprocess.run(
            [str(celery), "-A", "smartpay", subcommand, "--help"],
            cwd=BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
