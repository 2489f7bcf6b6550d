"""The `make bench` harness's own logic (bench/perf/), without timing anything: percentiles, summaries,
ratios and targets, the table, the load generator's bookkeeping, the webhook signature, and the bare
reference app's three endpoints (in a child process, with its own settings on SQLite)."""

import json
import math
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.test import override_settings

from bench.perf import load, runner, stats, workload

ROOT = Path(__file__).resolve().parents[2]


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert stats.percentile(values, 50) == 5.0
    assert stats.percentile(values, 95) == 10.0
    assert stats.percentile(values, 10) == 1.0
    assert stats.percentile([0.04, 0.01, 0.03, 0.02], 50) == 0.02  # sorts first
    assert stats.percentile([0.04, 0.01, 0.03, 0.02], 99) == 0.04
    assert math.isnan(stats.percentile([], 50))


def test_sample_sums_rounds_into_rates_latencies_and_cpu_per_request():
    sample = stats.Sample()
    sample.add_round([0.010] * 10, elapsed=2.0, cpu_seconds=0.5, errors=0, server_errors=0)
    sample.add_round([0.030] * 30, elapsed=2.0, cpu_seconds=1.5, errors=2, server_errors=1)
    assert sample.count == 40
    assert sample.rps == 10.0  # 40 requests over 4 s
    assert sample.rounds_rps == [5.0, 15.0]
    assert sample.cpu_ms_per_request == 50.0  # 2.0 s of CPU over 40 requests
    assert sample.ms(50) == pytest.approx(30.0)
    assert sample.ms(25) == pytest.approx(10.0)
    assert (sample.errors, sample.server_errors) == (2, 1)
    assert math.isnan(stats.Sample().rps) and math.isnan(stats.Sample().cpu_ms_per_request)


def test_ratio_and_target_verdicts():
    assert stats.ratio(60, 100) == 0.6
    assert math.isnan(stats.ratio(60, 0)) and math.isnan(stats.ratio(math.nan, 1))
    assert stats.at_least("t", 0.60, 0.60).verdict == "PASS"
    assert stats.at_least("t", 0.59, 0.60).verdict == "FAIL"
    assert stats.at_least("t", math.nan, 0.60).verdict == "FAIL"
    assert stats.at_most("t", 10.0, 10).verdict == "PASS"
    assert stats.at_most("t", 10.1, 10).verdict == "FAIL"
    assert stats.at_least("t", 1, 0.8).goal == "≥ 0.80x" and stats.at_most("t", 1, 25).goal == "≤ 25 ms"


def _sample(count, elapsed, latency):
    sample = stats.Sample()
    sample.add_round([latency] * count, elapsed=elapsed, cpu_seconds=0.0, errors=0, server_errors=0)
    return sample


def test_targets_compare_smartpay_with_bare_and_latency_with_the_gateway():
    samples = {
        ("payments", "sp"): _sample(60, 1.0, 0.1),  # 60/s
        ("payments", "bare"): _sample(100, 1.0, 0.1),  # 100/s: 0.60x, a pass
        ("latency", "sp"): _sample(10, 1.0, 0.0155),  # 15.5 ms
        ("latency", "gateway"): _sample(10, 1.0, 0.005),  # 5 ms: 10.5 ms added, p50 fails; p99 passes
        ("webhooks", "sp"): _sample(79, 1.0, 0.01),
        ("webhooks", "bare"): _sample(100, 1.0, 0.01),  # 0.79x: fails
        ("credits", "sp"): _sample(70, 1.0, 0.01),
        ("credits", "bare"): _sample(100, 1.0, 0.01),
    }
    verdicts = [(t.measured, t.verdict) for t in runner.targets(samples)]
    assert [v for _, v in verdicts] == ["PASS", "FAIL", "PASS", "FAIL", "PASS"]
    assert verdicts[0][0] == pytest.approx(0.60)
    assert verdicts[1][0] == pytest.approx(10.5)
    assert verdicts[3][0] == pytest.approx(0.79)


def test_markdown_table():
    table = stats.markdown_table(["a", "b"], [["1", "2"], ["x", "y"]])
    assert table == "| a | b |\n|---|---|\n| 1 | 2 |\n| x | y |"
    assert stats.fmt(math.nan) == "—" and stats.fmt(1.25, 1) == "1.2" and stats.fmt(3.14159, 2) == "3.14"


def test_cpu_used_counts_new_processes_from_zero_and_forgets_gone_ones():
    assert load.cpu_used({1: 1.0, 2: 2.0}, {1: 1.5, 3: 0.25}) == pytest.approx(0.75)
    me = os.getpid()
    assert me in load.descendants(me)
    assert load.cpu_seconds([me])[me] > 0


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status = {"/ok": 201, "/bad": 500, "/wrong": 200}[self.path]
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_load_run_sends_each_request_once_and_counts_what_was_not_expected():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        requests = [load.Request("POST", path, b"x") for path in ["/ok"] * 7 + ["/bad"] * 2 + ["/wrong"]]
        result = load.run("127.0.0.1", port, requests, concurrency=3, expect=201)
    finally:
        server.shutdown()
        server.server_close()
    assert result.statuses == {201: 7, 500: 2, 200: 1}
    assert len(result.latencies) == 7  # only expected answers are timed
    assert (result.errors, result.server_errors) == (3, 2)
    assert result.first_error.startswith(("500", "200"))


@override_settings(MERCADOPAGO_WEBHOOK_SECRET=workload.WEBHOOK_SECRET, MERCADOPAGO_WEBHOOK_TOLERANCE_SECONDS=600)
def test_webhook_requests_carry_a_signature_smartpay_accepts():
    from payments.services.webhooks import WebhookRejected, verify_mercadopago_signature

    request = workload.webhook_request(5)
    body = json.loads(request.body)
    data_id = body["data"]["id"]
    assert data_id == "900000005" and request.path == "/webhooks/mercadopago?data.id=900000005&type=payment"
    verify_mercadopago_signature(
        header=request.headers["X-Signature"], data_id=data_id, request_id=request.headers["X-Request-Id"]
    )
    with pytest.raises(WebhookRejected):
        verify_mercadopago_signature(header=request.headers["X-Signature"], data_id="1", request_id="other")


def test_payment_requests_are_fresh_each_time_and_alike_on_both_sides():
    one, two = (
        workload.payment_request("sp", "sk_test_x", "tkn_1", 1),
        workload.payment_request("bare", "sk_test_x", "tkn_2", 2),
    )
    assert one.headers["Idempotency-Key"] != two.headers["Idempotency-Key"]
    assert json.loads(one.body) == {
        "amount": 2500,
        "currency": "PEN",
        "email": "ana@example.com",
        "capture": True,
        "source": {"gateway": "culqi", "token": "tkn_1"},
    }
    assert workload.payment_succeeded(b'{"status":"succeeded"}') and not workload.payment_succeeded(b"<html>")


BARE_SCRIPT = r"""
import json
from unittest import mock

import django

django.setup()
from django.test import Client

from bench.perf.bare import seed
from bench.perf.bare.core import models, views

seed.seed("sk_test_bench", "cus_1", 5)
client = Client()
auth = {"HTTP_AUTHORIZATION": "Bearer sk_test_bench"}
charge = mock.Mock(status_code=201)
charge.json.return_value = {"object": "charge", "id": "chr_test_1", "outcome": {"type": "venta_exitosa"}}
with mock.patch.object(views._session, "post", return_value=charge) as post:
    pay = client.post("/api/v1/payments", json.dumps({"amount": 2500, "currency": "PEN", "email": "a@b.pe",
                      "source": {"gateway": "culqi", "token": "tkn_test_1"}}), content_type="application/json", **auth)
sent = post.call_args.kwargs["json"]
out = {
    "pay": [pay.status_code, pay.json()],
    "sent": sent,
    "url": post.call_args.args[0],
    "intents": list(models.Intent.objects.values_list("status", "gateway_charge_id", "amount")),
    "unauthorized": client.post("/api/v1/payments", "{}", content_type="application/json").status_code,
    "hook": client.post("/webhooks/mercadopago?data.id=1", json.dumps({"id": 7, "data": {"id": "1"}}),
                        content_type="application/json").status_code,
    "hooks": models.WebhookDelivery.objects.count(),
}
credits = [client.post("/api/v1/customers/cus_1/credit-consumptions", json.dumps({"amount": 2}),
                       content_type="application/json", **auth).status_code for _ in range(3)]
out["credits"] = credits
out["balance"] = models.CreditAccount.objects.get().balance
out["entries"] = list(models.CreditEntry.objects.order_by("pk").values_list("amount", "balance_after"))
print(json.dumps(out))
"""


def test_bare_app_endpoints_do_the_durable_minimum():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BARE_"))}
    env |= {
        "DJANGO_SETTINGS_MODULE": "bench.perf.bare.settings",
        "BARE_DATABASE_URL": "sqlite://:memory:",
        "BARE_GATEWAY_BASE": "http://sim.invalid/sandbox/culqi",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", BARE_SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    status, body = out["pay"]
    assert status == 201 and body["status"] == "succeeded" and body["gateway_payment_id"] == "chr_test_1"
    assert out["url"] == "http://sim.invalid/sandbox/culqi/v2/charges"
    reference = body["id"]
    assert out["sent"] == {  # the body SmartPay's Culqi adapter sends
        "amount": 2500,
        "currency_code": "PEN",
        "email": "a@b.pe",
        "source_id": "tkn_test_1",
        "capture": True,
        "description": f"Pago {reference}",
        "metadata": {"smartpay_payment_id": reference},
    }
    assert out["intents"] == [["succeeded", "chr_test_1", 2500]]
    assert out["unauthorized"] == 401
    assert (out["hook"], out["hooks"]) == (200, 1)
    assert out["credits"] == [201, 201, 422]  # 5 credits: 2, 2, then 2 more than the 1 left
    assert out["balance"] == 1
    assert out["entries"] == [[-2, 3], [-2, 1]]
