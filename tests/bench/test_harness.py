"""The benchmark harness's own parts: wrk's result line, the Lua token rotation, the fake provider.

None of these tests measures time: they check that what the benchmark counts is
counted right (errors, reused tokens, double refreshes, lost tokens).
"""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from bench import serverlog, wrk
from bench.report import markdown
from bench.schwab import SchwabServer
from bench.stats import fmt_spread, percentile, spread

WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:1234/api/v1/bench/baseline
BENCH_RESULT requests=3000 duration_us=3000000 bytes=1 connect=1 read=2 write=0 status=500 timeout=3 \
p50=1500 p90=2000 p95=2500 p99=4000 max=9000 mean=1600.5
"""


def test_wrk_result_line_is_parsed_and_errors_do_not_count_as_throughput():
    result = wrk.parse_output(WRK_OUTPUT)
    assert result.requests == 3000
    assert result.rps == pytest.approx(2500 / 3, abs=0.1)
    assert (result.p50_ms, result.p95_ms, result.p99_ms) == (1.5, 2.5, 4.0)
    assert result.non_2xx == 500
    assert result.errors == 500 + 3 + 3


def test_wrk_without_a_result_line_is_an_error():
    with pytest.raises(RuntimeError, match="no result line"):
        wrk.parse_output("unable to connect to 127.0.0.1:1 Connection refused")


def test_spread_is_median_min_max():
    assert spread([3, 1, 2, None]) == {"median": 2, "min": 1, "max": 3, "n": 3}
    assert spread([]) == {"median": None, "min": None, "max": None, "n": 0}
    assert fmt_spread(spread([10.0, 12.0, 11.0])) == "11.0 (10.0–12.0)"
    assert percentile(range(1, 101), 99) == 99


def test_server_time_is_read_from_the_access_log(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("\n".join([
        json.dumps({"message": "request", "request_id": "a", "duration_ms": 12.5}),
        "[2026-01-01] gunicorn noise",
        json.dumps({"message": "request", "request_id": "b", "duration_ms": 3}),
        json.dumps({"message": "request", "request_id": "c", "duration_ms": 99}),
    ]))
    assert serverlog.durations(log, {"a", "b", "missing"}) == {"a": 12.5, "b": 3.0}


def test_report_marks_a_missed_target_and_a_skipped_scenario():
    s = spread([100.0])
    document = {
        "started_at": "x", "short": True, "machine": {}, "options": {"runs": 1},
        "scenarios": {
            "baseline": {"rps": s, "p50_ms": s, "p95_ms": s, "p99_ms": s, "errors": 0, "peak_rss_mb": 90.0},
            "refresh": {"rps": spread([150.0]), "p50_ms": s, "p95_ms": s, "p99_ms": s, "errors": 0,
                        "peak_rss_mb": 91.0, "met": False},
            "login": {"skipped": "/api/v1/auth/login is not routed yet"},
        },
    }
    table = markdown(document)
    assert "| refresh | 150 |" in table
    assert "**no**" in table
    assert "not routed yet" in table


# --- the fake Schwab server ---------------------------------------------------------------
@pytest.fixture
def schwab():
    server = SchwabServer(latency=0.0)
    yield server
    server.stop()


def _refresh(server, token, auth=("bench-client", "bench-secret")):
    return requests.post(server.base_url + "/v1/oauth/token", auth=auth, timeout=5,
                         data={"grant_type": "refresh_token", "refresh_token": token})


@pytest.mark.integration
def test_fake_schwab_rotates_refresh_tokens(schwab):
    schwab.ledger.register("conn-1", "rt-seed-1")
    response = _refresh(schwab, "rt-seed-1")
    assert response.status_code == 200
    body = response.json()
    assert body["refresh_token"] != "rt-seed-1"
    assert body["access_token"] and body["expires_in"] == 1800
    assert schwab.ledger.lost({"conn-1": body["refresh_token"]}) == []
    assert schwab.ledger.double_refreshes == 0


@pytest.mark.integration
def test_fake_schwab_counts_a_spent_token_presented_again_as_a_double_refresh(schwab):
    schwab.ledger.register("conn-1", "rt-seed-1")
    assert _refresh(schwab, "rt-seed-1").status_code == 200
    again = _refresh(schwab, "rt-seed-1")
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert schwab.ledger.double_refreshes == 1


@pytest.mark.integration
def test_fake_schwab_reports_a_connection_left_holding_an_old_token_as_lost(schwab):
    schwab.ledger.register("conn-1", "rt-seed-1")
    schwab.ledger.register("conn-2", "rt-seed-2")
    _refresh(schwab, "rt-seed-1")
    assert schwab.ledger.lost({"conn-1": "rt-seed-1", "conn-2": "rt-seed-2"}) == ["conn-1"]


@pytest.mark.integration
def test_fake_schwab_refuses_wrong_client_credentials(schwab):
    schwab.ledger.register("conn-1", "rt-seed-1")
    assert _refresh(schwab, "rt-seed-1", auth=("bench-client", "wrong")).status_code == 401
    assert schwab.ledger.refreshes == 0


# --- the refresh Lua script against a server that detects reuse ------------------------------
class RotatingServer:
    """POST {"refresh": t} -> 200 {"refresh": next} once per token; a reused token -> 401."""

    def __init__(self, seeds):
        self.live = set(seeds)
        self.reused = 0
        self.rotations = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                return

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    token = body.get("refresh")
                    if token in outer.live:
                        outer.live.discard(token)
                        outer.rotations += 1
                        new = f"{token.split('.')[0]}.{outer.rotations}"
                        outer.live.add(new)
                        status, payload = 200, {"access": "a", "refresh": new, "expires_in": 1}
                    else:
                        outer.reused += 1
                        status, payload = 401, {"code": "TOKEN_REUSED"}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed")
@pytest.mark.slow
def test_refresh_script_never_sends_a_refresh_token_twice(tmp_path):
    seeds = [f"s{i}.0" for i in range(200)]
    server = RotatingServer(seeds)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("\n".join(seeds) + "\n")
    try:
        result = wrk.run(url=server.url, script=wrk.build_script("refresh", tmp_path),
                         args=[str(tokens), "/api/v1/auth/refresh"], threads=2, connections=4,
                         duration=1, cpus=None)
    finally:
        server.httpd.shutdown()
    assert server.rotations > 0
    assert server.reused == 0
    assert result.errors == 0
    assert len(server.live) == len(seeds)  # one live token per session at the end


def test_fake_schwab_over_tls_is_trusted_through_its_own_certificate():
    server = SchwabServer(latency=0.0, tls=True)
    try:
        server.ledger.register("conn-1", "rt-seed-1")
        assert server.base_url.startswith("https://127.0.0.1:")
        with pytest.raises(requests.exceptions.SSLError):
            requests.post(server.base_url + "/v1/oauth/token", timeout=5)
        response = requests.post(server.base_url + "/v1/oauth/token", auth=("bench-client", "bench-secret"),
                                 data={"grant_type": "refresh_token", "refresh_token": "rt-seed-1"},
                                 verify=str(server.ca_file), timeout=5)
        assert response.status_code == 200
        assert server.ledger.refreshes == 1
    finally:
        server.stop()
