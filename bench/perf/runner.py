"""`make bench`: SmartPay side by side with the bare reference, on PostgreSQL and Redis (bench/README.md).

    .venv/bin/python -m bench.perf [--rounds 3] [--quick] [--keep] [--strict]

Starts the Culqi simulator (SmartPay in sandbox mode, its own database), SmartPay and the bare app
(gunicorn, 2 sync workers each, DEBUG off), prepares data, measures in interleaved rounds, checks
correctness, writes bench/results/latest.md and stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.perf import load, servers, stats, workload

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
DATABASES = {"sp": "smartpay_bench_sp", "sim": "smartpay_bench_sim", "bare": "smartpay_bench_bare"}
REDIS_DBS = {"sp": 3, "sim": 4}
HOST = "127.0.0.1"
THROTTLE_OFF = "1000000000"
CREDITS_GRANTED = 10_000_000
RESULTS = ROOT / "bench" / "results" / "latest.md"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side, interleaved (default 3)")
    parser.add_argument("--payments", type=int, default=400, help="payments per side per round at c=8")
    parser.add_argument("--latency", type=int, default=150, help="sequential payments per side per round (c=1)")
    parser.add_argument("--webhooks", type=int, default=1500, help="webhooks per side per round at c=8")
    parser.add_argument("--credits", type=int, default=1200, help="credit consumptions per side per round at c=8")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "8101")), help="first of 3 ports")
    parser.add_argument("--quick", action="store_true", help="1 round of small batches: checks the harness works")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards (for inspection)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails, not only on errors")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.payments, args.latency, args.webhooks, args.credits = 1, 40, 10, 80, 80
    return args


# --- Databases and Redis -------------------------------------------------------------------------


def _admin_sql(*statements: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)


def recreate_databases() -> None:
    for name in DATABASES.values():
        _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')


def drop_databases() -> None:
    for name in DATABASES.values():
        _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_client(db: int):
    import redis

    return redis.Redis.from_url(f"{REDIS}/{db}")


def flush_redis() -> None:
    for db in REDIS_DBS.values():
        redis_client(db).flushdb()


# --- Environments ----------------------------------------------------------------------------------


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "CELERY_", "DJANGO_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def smartpay_env(role: str, ports: dict[str, int]) -> dict[str, str]:
    """SmartPay as the measured service ("sp") or as the gateway simulator ("sim")."""
    sim_base = f"http://{HOST}:{ports['sim']}/sandbox"
    env = _base_env() | {
        "DJANGO_SETTINGS_MODULE": "smartpay.settings",
        "DEBUG": "false",
        "SECRET_KEY": f"bench-{role}-secret-key-not-for-production-0123456789abcdefghij",
        "ALLOWED_HOSTS": HOST,
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": f"{PG}/{DATABASES[role]}",
        "REDIS_URL": f"{REDIS}/{REDIS_DBS[role]}",
        "CELERY_BROKER_URL": f"{REDIS}/{REDIS_DBS[role]}",
        "GATEWAY_MODE": "sandbox",
        "PUBLIC_BASE_URL": f"http://{HOST}:{ports[role]}",
        "API_RATE_LIMIT_WRITE_PER_MINUTE": THROTTLE_OFF,
        "API_RATE_LIMIT_READ_PER_MINUTE": THROTTLE_OFF,
        "MERCADOPAGO_WEBHOOK_SECRET": workload.WEBHOOK_SECRET,
        "PAYER_EMAILS_ENABLED": "false",
        "SIMULATOR_DELIVER_WEBHOOKS": "false",
        "LOG_LEVEL": "WARNING",
    }
    if role == "sp":
        env |= {
            "CULQI_API_BASE": f"{sim_base}/culqi",
            "CULQI_SECURE_BASE": f"{sim_base}/culqi",
            "MERCADOPAGO_API_BASE": f"{sim_base}/mercadopago",
        }
    return env


def bare_env(ports: dict[str, int]) -> dict[str, str]:
    return _base_env() | {
        "DJANGO_SETTINGS_MODULE": "bench.perf.bare.settings",
        "BARE_DATABASE_URL": f"{PG}/{DATABASES['bare']}",
        "BARE_GATEWAY_BASE": f"http://{HOST}:{ports['sim']}/sandbox/culqi",
        "ALLOWED_HOSTS": HOST,
    }


def run_json(argv: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- Measuring ----------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args, ports, pids, api_key, customer_id):
        self.args, self.ports, self.pids = args, ports, pids
        self.api_key, self.customer_id = api_key, customer_id
        self.samples: dict[tuple[str, str], stats.Sample] = {}
        self.failures: list[str] = []
        self.serial = 0

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def tokens(self, count: int) -> list[str]:
        """Fresh single-use Culqi tokens from the simulator (they live 5 minutes: made per round)."""
        request = workload.token_request()

        def make(_):
            status, body = load.send(HOST, self.ports["sim"], request)
            if status != 201:
                raise RuntimeError(f"token creation answered {status}: {body[:200]!r}")
            return json.loads(body)["id"]

        with ThreadPoolExecutor(self.args.concurrency) as pool:
            return list(pool.map(make, range(count)))

    def measure(self, path: str, side: str, requests, *, concurrency: int, expect: int, check=None, record=True):
        port = self.ports["sim" if side == "gateway" else side]
        pids = load.descendants(self.pids[side]) if side in self.pids else []
        before = load.cpu_seconds(pids)
        result = load.run(HOST, port, requests, concurrency=concurrency, expect=expect, check=check)
        cpu = load.cpu_used(before, load.cpu_seconds(load.descendants(self.pids[side]) if pids else []))
        if result.errors:
            self.failures.append(
                f"{path} / {side}: {result.errors} unexpected answers {result.statuses}; first: {result.first_error}"
            )
        if record:
            sample = self.samples.setdefault((path, side), stats.Sample())
            sample.add_round(result.latencies, result.elapsed, cpu, result.errors, result.server_errors)
        return result

    def payments(self, side: str, tokens: list[str], concurrency: int, path: str, record=True):
        requests = [workload.payment_request(side, self.api_key, token, self.next_serial()) for token in tokens]
        self.measure(
            path, side, requests, concurrency=concurrency, expect=201, check=workload.payment_succeeded, record=record
        )

    def gateway(self, tokens: list[str], record=True):
        requests = [workload.charge_request(token, self.next_serial()) for token in tokens]
        self.measure("latency", "gateway", requests, concurrency=1, expect=201, record=record)

    def webhooks(self, side: str, count: int, record=True):
        requests = [workload.webhook_request(self.next_serial()) for _ in range(count)]
        self.measure("webhooks", side, requests, concurrency=self.args.concurrency, expect=200, record=record)

    def credits(self, side: str, count: int, record=True):
        requests = [workload.credit_request(self.api_key, self.customer_id, self.next_serial()) for _ in range(count)]
        self.measure("credits", side, requests, concurrency=self.args.concurrency, expect=201, record=record)

    def warm_up(self):
        tokens = self.tokens(4 * self.args.concurrency)
        for index, side in enumerate(("sp", "bare")):
            part = tokens[index * 2 * self.args.concurrency : (index + 1) * 2 * self.args.concurrency]
            self.payments(side, part, self.args.concurrency, "payments", record=False)
            self.webhooks(side, 4 * self.args.concurrency, record=False)
            self.credits(side, 4 * self.args.concurrency, record=False)

    def round(self, number: int) -> None:
        a = self.args
        order = ("sp", "bare") if number % 2 else ("bare", "sp")
        tokens = self.tokens(2 * a.payments + 3 * a.latency)
        batches = {"sp": tokens[: a.payments], "bare": tokens[a.payments : 2 * a.payments]}
        latency = [tokens[2 * a.payments + i * a.latency : 2 * a.payments + (i + 1) * a.latency] for i in range(3)]
        for side in order:
            self.payments(side, batches[side], a.concurrency, "payments")
        self.gateway(latency[0])
        for index, side in enumerate(order):
            self.payments(side, latency[index + 1], 1, "latency")
        for side in order:
            self.webhooks(side, a.webhooks)
        for side in order:
            self.credits(side, a.credits)


# --- Reporting ------------------------------------------------------------------------------------------

PATHS = (
    ("payments", f"POST /api/v1/payments, c={8}"),
    ("latency", "POST /api/v1/payments, c=1"),
    ("webhooks", "signed Mercado Pago webhook, c=8"),
    ("credits", "credit consumption, one customer, c=8"),
)
SIDE_NAMES = {"sp": "SmartPay", "bare": "bare", "gateway": "gateway call alone"}


def targets(samples) -> list[stats.Target]:
    def get(path, side):
        return samples.get((path, side), stats.Sample())

    gateway = get("latency", "gateway")
    return [
        stats.at_least(
            "payments throughput c=8, SmartPay/bare",
            stats.ratio(get("payments", "sp").rps, get("payments", "bare").rps),
            0.60,
        ),
        stats.at_most("added latency over the gateway p50 (c=1)", get("latency", "sp").ms(50) - gateway.ms(50), 10),
        stats.at_most("added latency over the gateway p99 (c=1)", get("latency", "sp").ms(99) - gateway.ms(99), 25),
        stats.at_least(
            "webhook acknowledgement c=8, SmartPay/bare",
            stats.ratio(get("webhooks", "sp").rps, get("webhooks", "bare").rps),
            0.80,
        ),
        stats.at_least(
            "credit consumptions c=8, SmartPay/bare",
            stats.ratio(get("credits", "sp").rps, get("credits", "bare").rps),
            0.60,
        ),
    ]


def results_table(samples) -> str:
    rows = []
    for path, label in PATHS:
        sides = ("sp", "bare", "gateway") if path == "latency" else ("sp", "bare")
        for side in sides:
            sample = samples.get((path, side))
            if sample is None:
                continue
            rounds = ", ".join(stats.fmt(value, 0) for value in sample.rounds_rps)
            cpu = stats.fmt(sample.cpu_ms_per_request) if side != "gateway" else "—"
            rows.append(
                [
                    label,
                    SIDE_NAMES[side],
                    str(sample.count),
                    f"{stats.fmt(sample.rps)} ({rounds})",
                    stats.fmt(sample.ms(50)),
                    stats.fmt(sample.ms(95)),
                    stats.fmt(sample.ms(99)),
                    cpu,
                    str(sample.errors),
                ]
            )
    headers = ["path", "side", "requests", "req/s (per round)", "p50 ms", "p95 ms", "p99 ms", "CPU ms/req", "errors"]
    return stats.markdown_table(headers, rows)


def ratio_table(samples) -> str:
    rows = []
    for path, label in PATHS:
        sp, bare = samples.get((path, "sp")), samples.get((path, "bare"))
        if sp is None or bare is None:
            continue
        gateway = samples.get(("latency", "gateway"))
        added = ""
        if path == "latency" and gateway is not None:
            added = (
                f"added over the gateway p50/p99: SmartPay {stats.fmt(sp.ms(50) - gateway.ms(50))}/"
                f"{stats.fmt(sp.ms(99) - gateway.ms(99))} ms, bare {stats.fmt(bare.ms(50) - gateway.ms(50))}/"
                f"{stats.fmt(bare.ms(99) - gateway.ms(99))} ms"
            )
        rows.append(
            [
                label,
                f"{stats.fmt(stats.ratio(sp.rps, bare.rps), 2)}x",
                f"{stats.fmt(stats.ratio(sp.cpu_ms_per_request, bare.cpu_ms_per_request), 2)}x",
                added,
            ]
        )
    return stats.markdown_table(["path", "throughput SmartPay/bare", "CPU per request SmartPay/bare", "latency"], rows)


def targets_table(samples) -> str:
    rows = [[t.name, t.goal, stats.fmt(t.measured, 2), t.verdict] for t in targets(samples)]
    return stats.markdown_table(["target", "goal", "measured", "verdict"], rows)


def correctness(bench: Bench, ports: dict[str, int], queued: int) -> list[tuple[str, bool, str]]:
    sp = run_json([str(PYTHON), "-m", "bench.perf.smartpay_side", "check"], smartpay_env("sp", ports))
    sim = run_json([str(PYTHON), "-m", "bench.perf.smartpay_side", "simcharges"], smartpay_env("sim", ports))
    succeeded, charged = set(sp["succeeded_charge_ids"]), set(sim["charge_ids"])
    server_errors = sum(s.server_errors for s in bench.samples.values())
    checks = [
        (
            "simulator charges for SmartPay payments = succeeded SmartPay payments",
            succeeded == charged,
            f"{len(charged)} charges, {len(succeeded)} succeeded payments "
            f"({len(charged - succeeded)} charged but not succeeded, {len(succeeded - charged)} succeeded uncharged); "
            f"payments by status: {sp['statuses']}",
        ),
        (
            "exactly one invoice per succeeded payment",
            sp["payments_without_invoice_count"] == 0
            and not sp["payments_with_several_invoices"]
            and not sp["invoices_for_unsucceeded_payments"],
            f"{sp['invoices']} invoices; without: {sp['payments_without_invoice_count']}; "
            f"several: {sp['payments_with_several_invoices']}; "
            f"for unsucceeded: {sp['invoices_for_unsucceeded_payments']}",
        ),
        (
            "gap-free correlatives per series",
            not sp["series_gaps"],
            f"series {sp['series']}; gaps: {sp['series_gaps'] or 'none'}",
        ),
        ("credit ledger drift 0 (check_credit_ledger)", sp["ledger_ok"], sp["ledger_output"]),
        (
            "no 5xx and no unexpected answer",
            server_errors == 0 and not bench.failures,
            "; ".join(bench.failures) or "none",
        ),
    ]
    checks.append(
        ("tasks queued on Redis (not consumed during the run)", True, f"{queued} messages in the `celery` queue")
    )
    return checks


def render(args, bench: Bench, checks, started: float) -> str:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    lines = [
        "# make bench: latest results",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs ({cpu_model}), {args.rounds} interleaved "
        f"round(s) per side; per round: {args.payments} payments at c={args.concurrency}, {args.latency} sequential "
        f"payments per side plus as many charges straight at the simulator, {args.webhooks} webhooks and "
        f"{args.credits} credit consumptions at c={args.concurrency}. gunicorn with 2 sync workers per server, "
        "DEBUG off, "
        f"PostgreSQL and Redis on this machine. SmartPay's API throttling set out of the way "
        f"(API_RATE_LIMIT_WRITE_PER_MINUTE = API_RATE_LIMIT_READ_PER_MINUTE = {THROTTLE_OFF}); payer emails off; "
        "billing on; Celery tasks published to Redis, no worker consuming them during the run.",
        "",
        "## Per path and side",
        "",
        "Latencies are the client's (connect to answer), over all rounds; req/s is requests over the summed wall time "
        "of the rounds; CPU is the side's gunicorn processes (user + system) per request.",
        "",
        results_table(bench.samples),
        "",
        "## SmartPay / bare",
        "",
        ratio_table(bench.samples),
        "",
        "## Targets (issue 12)",
        "",
        targets_table(bench.samples),
        "",
        "## Correctness after the run",
        "",
        stats.markdown_table(["check", "result", "detail"], [[n, "OK" if ok else "FAILED", d] for n, ok, d in checks]),
        "",
        f"Whole run: {time.monotonic() - started:.0f} s.",
        "",
    ]
    return "\n".join(lines)


# --- Main -------------------------------------------------------------------------------------------------


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows under make and in CI logs
    started = time.monotonic()
    ports = {"sim": args.port, "sp": args.port + 1, "bare": args.port + 2}
    busy = [port for port in ports.values() if not servers.port_free(port)]
    if busy:
        print(f"ports {busy} are in use: pass --port or set BENCH_PORT")
        return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)
    log_dir = Path(tempfile.mkdtemp(prefix="smartpay-bench-"))
    processes = servers.Processes(log_dir)
    print(f"logs: {log_dir}")
    try:
        print(
            "databases: recreating", ", ".join(DATABASES.values()), f"; Redis dbs {sorted(REDIS_DBS.values())} flushed"
        )
        recreate_databases()
        flush_redis()
        prepared = run_json(
            [str(PYTHON), "-m", "bench.perf.smartpay_side", "prepare", str(CREDITS_GRANTED)], smartpay_env("sp", ports)
        )
        customer_id = prepared["customer_id"]
        migrate = subprocess.run(
            [str(PYTHON), "manage.py", "migrate", "--noinput"],
            env=smartpay_env("sim", ports),
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        if migrate.returncode:
            raise RuntimeError(f"simulator migrate failed: {migrate.stderr[-2000:]!r}")
        seeded = subprocess.run(
            [str(PYTHON), "-m", "bench.perf.bare.seed", prepared["api_key"], customer_id, str(CREDITS_GRANTED)],
            env=bare_env(ports),
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        if seeded.returncode:
            raise RuntimeError(f"bare seed failed: {seeded.stderr[-2000:]!r}")

        print("starting: simulator, SmartPay, bare (gunicorn, 2 sync workers each)")
        python = PYTHON
        sim = processes.start(
            "simulator",
            servers.gunicorn_argv(python, "smartpay.wsgi:application", ports["sim"]),
            smartpay_env("sim", ports),
            ROOT,
        )
        sp = processes.start(
            "smartpay",
            servers.gunicorn_argv(python, "smartpay.wsgi:application", ports["sp"]),
            smartpay_env("sp", ports),
            ROOT,
        )
        bare = processes.start(
            "bare",
            servers.gunicorn_argv(python, "bench.perf.bare.wsgi:application", ports["bare"]),
            bare_env(ports),
            ROOT,
        )
        servers.wait_until_up("simulator", sim, ports["sim"], "/healthz")
        servers.wait_until_up("SmartPay", sp, ports["sp"], "/healthz")
        servers.wait_until_up("bare", bare, ports["bare"], "/webhooks/mercadopago")

        bench = Bench(args, ports, {"sp": sp.pid, "bare": bare.pid}, prepared["api_key"], customer_id)
        bench.warm_up()
        bench.failures.clear()  # warm-up answers are not measured; a broken path shows again in the rounds
        for number in range(1, args.rounds + 1):
            round_started = time.monotonic()
            bench.round(number)
            print(f"round {number}/{args.rounds} done in {time.monotonic() - round_started:.0f} s")
        queued = int(redis_client(REDIS_DBS["sp"]).llen("celery"))
        processes.stop_all()
        checks = correctness(bench, ports, queued)
        report = render(args, bench, checks, started)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report)
        print(report)
        print(f"written to {args.output}")
        if not all(ok for _, ok, _ in checks):
            return 1
        if args.strict and not all(t.passed for t in targets(bench.samples)):
            return 1
        return 0
    except KeyboardInterrupt:
        print("interrupted: stopping everything")
        return 130
    finally:
        processes.stop_all()
        try:
            flush_redis()
            if not args.keep:
                drop_databases()
        except Exception as error:  # cleanup must not hide the run's own outcome
            print(f"cleanup: {error!r}")
