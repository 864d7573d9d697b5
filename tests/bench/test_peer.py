"""The peer reference (issue 18), the application servers and the scale-out run: what the bench
builds and how it pairs the numbers. Nothing here measures time."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from bench import peer, report, run, scenarios, stack
from bench.stats import spread
from bench.wrk import WrkResult


def _wrk(rps: float, cpu: float, p99: float = 3) -> WrkResult:
    return WrkResult(requests=int(rps * 10), duration_s=10, rps=rps, p50_ms=1, p90_ms=2, p95_ms=2, p99_ms=p99,
                     max_ms=5, mean_ms=1, errors=0, non_2xx=0, socket_errors=0, timeouts=0,
                     cpu_ms_per_request=cpu)


def _summary(results: list[WrkResult]) -> dict:
    return scenarios.summarize(results, None)


def _options(**kw) -> scenarios.Options:
    base = dict(short=True, runs=2, duration=1, warmup=1, connections=32, threads=2, me_sessions=4,
                refresh_sessions=4, login_users=2, audit_rows=0, admin_samples=1, provider_connections=1,
                provider_latency_ms=1, provider_timeout_s=1, worker_concurrency=1)
    base.update(kw)
    return scenarios.Options(**base)


def test_the_generated_peer_is_a_plain_project_with_the_stack_a_user_would_pick(tmp_path):
    made = peer.Peer(tmp_path, "postgres://postgres:s%40cret@127.0.0.1:5432/dashtam_bench_peer", log=print)
    made.write()
    settings = (tmp_path / peer.PACKAGE / "settings.py").read_text()
    for name in ("settings.py", "views.py", "urls.py", "wsgi.py"):
        ast.parse((tmp_path / peer.PACKAGE / name).read_text())
    ast.parse((tmp_path / "bench_seed.py").read_text())
    namespace: dict = {"__file__": str(tmp_path / peer.PACKAGE / "settings.py")}
    exec(compile(settings, "settings.py", "exec"), namespace)  # noqa: S102 - the bench's own template
    assert namespace["DEBUG"] is False
    assert namespace["DATABASES"]["default"]["NAME"] == "dashtam_bench_peer"
    assert namespace["DATABASES"]["default"]["PASSWORD"] == "s@cret"
    # startproject's middleware, in its order, plus whitenoise, corsheaders and axes.
    startproject = ["django.middleware.security.SecurityMiddleware",
                    "django.contrib.sessions.middleware.SessionMiddleware",
                    "django.middleware.common.CommonMiddleware", "django.middleware.csrf.CsrfViewMiddleware",
                    "django.contrib.auth.middleware.AuthenticationMiddleware",
                    "django.contrib.messages.middleware.MessageMiddleware",
                    "django.middleware.clickjacking.XFrameOptionsMiddleware"]
    middleware = namespace["MIDDLEWARE"]
    assert [m for m in middleware if m in startproject] == startproject
    assert set(middleware) - set(startproject) == {"whitenoise.middleware.WhiteNoiseMiddleware",
                                                   "corsheaders.middleware.CorsMiddleware",
                                                   "axes.middleware.AxesMiddleware"}
    assert middleware[-1] == "axes.middleware.AxesMiddleware"
    assert "axes.backends.AxesStandaloneBackend" in namespace["AUTHENTICATION_BACKENDS"]
    assert "rest_framework_simplejwt.token_blacklist" in namespace["INSTALLED_APPS"]
    jwt = namespace["SIMPLE_JWT"]
    assert jwt["ROTATE_REFRESH_TOKENS"] and jwt["BLACKLIST_AFTER_ROTATION"]
    assert "CACHES" not in namespace  # Django's default: nothing in the peer needs a cache
    assert not any(line.startswith(("from dashtam", "import dashtam")) for line in settings.splitlines())


def test_the_peer_passes_djangos_deployment_checks(tmp_path):
    made = peer.Peer(tmp_path, "postgres://postgres@127.0.0.1:5432/dashtam_bench_peer", log=print)
    made.write()
    out = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                         cwd=tmp_path, env=made.env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_the_peer_database_is_the_bench_databases_name_with_peer(monkeypatch):
    monkeypatch.delenv("BENCH_PEER_DATABASE_URL", raising=False)
    assert peer.database_url("postgres://u@h:5432/dashtam_bench_b").endswith("/dashtam_bench_b_peer")
    monkeypatch.setenv("BENCH_PEER_DATABASE_URL", "postgres://u@h:5432/dashtam_bench_other")
    assert peer.database_url("postgres://u@h:5432/dashtam_bench").endswith("/dashtam_bench_other")


def test_granian_runs_with_gunicorns_workers_and_threads():
    args = ["--workers", "1", "--worker-class", "gthread", "--threads", "8"]
    argv = stack.server_argv("granian", "dashtam.wsgi:application", 8000, args)
    assert argv[argv.index("--interface") + 1] == "wsgi"
    assert argv[argv.index("--workers") + 1] == "1"
    assert argv[argv.index("--blocking-threads") + 1] == "8"
    assert argv[-1] == "dashtam.wsgi:application"
    two = stack.server_argv("gunicorn", "dashtam.wsgi:application", 8000, args, workers=2)
    assert two.count("--workers") == 1 and two[two.index("--workers") + 1] == "2"
    assert stack.server_argv("granian", "a:b", 1, args, workers=2)[argv.index("--workers") + 1] == "2"


def test_ours_and_the_peer_alternate_in_every_round():
    variants, servers = scenarios.http_variants(_options(), {"baseline", "me", "ratelimit_overhead"},
                                                 peer_on=True)
    names = [v.name for v in variants]
    assert names[:6] == ["baseline", "peer:baseline", "me", "peer:me", "me_c8", "peer:me_c8"]
    by_name = {v.name: v for v in variants}
    assert by_name["me_c8"].server == "me" and by_name["me_c8"].connections == 8
    assert by_name["peer:me_c8"].server == "peer:me"
    assert servers["peer:me"]["side"] == "peer"
    assert servers["me_ratelimit_off"]["env"] == {"RATELIMIT_ENABLE": "false"}
    assert by_name["peer:me"].path == peer.ME_PATH


def test_other_servers_and_the_scale_out_run_get_variants_of_their_own():
    variants, servers = scenarios.http_variants(_options(servers=("gunicorn", "granian"), scale_out=True),
                                                 {"baseline", "me"}, peer_on=True)
    names = {v.name for v in variants}
    assert {"granian:baseline", "granian:peer:baseline", "granian:me", "granian:peer:me",
            "scale_out:baseline", "scale_out:peer:me"} <= names
    assert servers["granian:peer:me"]["kind"] == "granian"
    assert servers["scale_out:me"]["scale_out"] is True and servers["scale_out:me"]["kind"] == "gunicorn"


def test_ratios_to_the_peer_are_taken_round_by_round_and_checked_against_issue_18():
    results = {
        "baseline": [_wrk(1000, 1.0), _wrk(900, 1.1)],
        "peer:baseline": [_wrk(1500, 0.9), _wrk(1500, 0.9)],
        "me": [_wrk(900, 1.2), _wrk(800, 1.3)],
        "peer:me": [_wrk(500, 2.0), _wrk(500, 2.0)],
        "me_c8": [_wrk(850, 1.2, p99=12), _wrk(800, 1.2, p99=14)],
        "peer:me_c8": [_wrk(450, 2.0, p99=30), _wrk(450, 2.0, p99=31)],
    }
    out = {name: _summary(r) for name, r in results.items()}
    made = scenarios.http_report(_options(), {"baseline", "me"}, results, out)
    baseline, me = made["baseline"], made["me"]
    assert round(baseline["vs_peer"]["cpu"]["median"], 4) == round((1.0 / 0.9 + 1.1 / 0.9) / 2, 4)
    assert baseline["met"] is True  # 1.17× the peer's CPU per request
    assert me["vs_peer"]["rps"]["median"] == pytest.approx(1.7)
    assert me["at_8"]["p99_ms"]["median"] == 13
    assert me["met"] is True
    results["me_c8"] = [_wrk(850, 1.2, p99=25), _wrk(800, 1.2, p99=26)]
    out["me_c8"] = _summary(results["me_c8"])
    assert scenarios.http_report(_options(), {"me"}, results, out)["me"]["met"] is False

    document = {"started_at": "x", "short": True, "machine": {}, "options": {"runs": 2}, "scenarios": made}
    table = report.markdown(document)
    assert "| vs peer |" in table
    assert "| baseline (peer) | 1,500 |" in table and "| me (peer) | 500 |" in table
    assert "CPU/req 1.17 (1.11–1.22)×" in table and "req/s 1.70 (1.60–1.80)×" in table
    assert "p99 at 8 connections 13.0 (12.0–14.0) ms" in table


def test_the_refresh_report_pairs_ours_with_simplejwts_and_compares_servers():
    opts = _options(servers=("gunicorn", "granian"), scale_out=True)
    results = {
        "refresh": [_wrk(450, 2.0), _wrk(460, 2.0)],
        "peer:refresh": [_wrk(150, 6.0), _wrk(140, 6.5)],
        "granian:refresh": [_wrk(500, 1.8), _wrk(500, 1.8)],
        "granian:peer:refresh": [_wrk(160, 5.5), _wrk(160, 5.5)],
        "scale_out:refresh": [_wrk(700, 2.1), _wrk(720, 2.1)],
        "scale_out:peer:refresh": [_wrk(250, 6.0), _wrk(250, 6.0)],
    }
    out = {name: _summary(r) for name, r in results.items()}
    made = scenarios.refresh_report(opts, results, out)
    assert made["refresh"]["vs_peer"]["rps"]["median"] == pytest.approx((3.0 + 460 / 140) / 2)
    assert made["refresh"]["met"] is True
    assert made["servers"]["scenarios"]["refresh"]["peer"]["vs_first"]["granian"]["rps"]["median"] == pytest.approx(
        (160 / 150 + 160 / 140) / 2)
    assert made["scale_out"]["refresh"]["ours"]["scaling"]["n"] == 2

    results_http = {"baseline": [_wrk(1000, 1.0)], "granian:baseline": [_wrk(1100, 0.9)],
                    "scale_out:baseline": [_wrk(1800, 1.0)]}
    out_http = {name: _summary(r) for name, r in results_http.items()}
    merged = {}
    run.merge(merged, scenarios.http_report(opts, {"baseline"}, results_http, out_http))
    run.merge(merged, made)
    assert set(merged["servers"]["scenarios"]) == {"baseline", "refresh"}
    assert set(merged["scale_out"]) == {"baseline", "refresh"}
    document = {"started_at": "x", "short": True, "machine": {"servers": ["gunicorn", "granian"]},
                "options": {"runs": 2}, "scenarios": merged}
    table = report.markdown(document)
    assert "| scenario | project | gunicorn | granian | granian vs gunicorn |" in table
    assert "| refresh | peer |" in table
    assert "Scale-out" in table and "| baseline | ours | 1,000 (1.00 ms CPU) | 1,800 (1.00 ms CPU) | 1.80× |" in table


def test_spread_of_no_ratio_is_empty():
    assert scenarios._ratios({}, "a", "b") == spread([])


def test_the_login_row_compares_the_latency_over_the_bare_hash_with_the_peers():
    s = spread([180.0])
    login = {"rps": spread([5.0]), "p50_ms": s, "p95_ms": s, "p99_ms": s, "errors": 0, "peak_rss_mb": 1.0,
             "argon2_verify_ms": spread([172.0]), "hash_in_request_ms": spread([172.0]),
             "overhead_ms": spread([8.0]), "latency_minus_bare_hash_ms": spread([8.0]), "met": False,
             "peer": {"rps": spread([5.2]), "p50_ms": spread([176.0]), "p95_ms": s, "p99_ms": s, "errors": 0,
                      "latency_minus_bare_hash_ms": spread([4.0])},
             "vs_peer": {"latency_minus_bare_hash_ms": spread([4.0]), "rps": spread([0.96]), "cpu": spread([1.0])}}
    document = {"started_at": "x", "short": True, "machine": {}, "options": {"runs": 1},
                "scenarios": {"login": login}}
    table = report.markdown(document)
    assert "latency over the bare hash 8.0 ms vs the peer's 4.0 ms" in table
    assert "| login (peer) | 5 |" in table and "176 ms per login, 4.0 ms over the bare hash" in table


def test_the_login_script_names_the_peers_login_field():
    lua = (scenarios.wrk.LUA_DIR / "login.lua").read_text()
    assert 'args[4] or "email"' in lua
