"""The markdown tables printed at the end of a run (and pasted into docs/performance.md)."""

from __future__ import annotations

from bench.stats import fmt, fmt_spread, markdown_table

ORDER = ["baseline", "me", "ratelimit_overhead", "metrics_overhead", "refresh", "login", "audit_admin", "provider_refresh"]


PEER_RESULT = {
    "baseline": "the peer's bare DRF view (`APIView`, `AllowAny`)",
    "me": "the peer's `me`: simplejwt's `JWTAuthentication` (one database read), `IsAuthenticated`",
    "refresh": "simplejwt's `TokenRefreshView`, rotation + blacklist",
    "login": "simplejwt's `TokenObtainPairView` (axes' backend, Django's Argon2)",
}


def _at_8(s: dict) -> str:
    at = s.get("at_8")
    if not at:
        return ""
    return f"; p99 at {at.get('connections', 8)} connections {fmt_spread(at['p99_ms'], 1)} ms"


def _vs_peer(name: str, s: dict) -> str:
    """The "vs peer" column: ours over the peer's, round by round (throughput; CPU per request)."""
    vs = s.get("vs_peer")
    if not vs:
        return "-"
    if name == "baseline":
        return f"CPU/req {fmt_spread(vs['cpu'], 2)}×; req/s {fmt_spread(vs['rps'], 2)}×"
    if name == "login":
        return (f"latency over the bare hash {fmt_spread(s.get('latency_minus_bare_hash_ms'), 1)} ms vs the "
                f"peer's {fmt_spread(s['peer'].get('latency_minus_bare_hash_ms'), 1)} ms")
    return f"req/s {fmt_spread(vs['rps'], 2)}×; CPU/req {fmt_spread(vs['cpu'], 2)}×"


def _row(name: str, s: dict, result: str, vs_peer: str, met) -> list[str]:
    return [
        name,
        fmt_spread(s.get("rps"), 0) if s.get("rps") else "-",
        fmt_spread(s.get("p50_ms"), 1) if s.get("p50_ms") else "-",
        fmt_spread(s.get("p95_ms"), 1) if s.get("p95_ms") else "-",
        fmt_spread(s.get("p99_ms"), 1) if s.get("p99_ms") else "-",
        fmt_spread(s.get("cpu_ms_per_request"), 2) if s.get("cpu_ms_per_request") else "-",
        fmt(s.get("errors")),
        fmt(s.get("peak_rss_mb")),
        result,
        vs_peer,
        "-" if met is None else ("yes" if met else "**no**"),
    ]


def _result(name: str, s: dict) -> str:
    if name == "baseline":
        return "1.0× (reference)"
    if name == "me":
        return (f"{fmt_spread(s['ratio_to_baseline'], 2)}× baseline throughput; by CPU per request "
                f"{fmt_spread(s.get('cpu_ratio_to_baseline'), 2)}×" + _at_8(s))
    if name == "ratelimit_overhead":
        return (f"limiter on {fmt_spread(s['on']['rps'], 0)}/s vs off {fmt_spread(s['off']['rps'], 0)}/s: "
                f"costs {fmt_spread(s['cost_pct'], 1)}% of throughput, "
                f"{fmt_spread(s.get('cpu_cost_pct'), 1)}% of CPU per request")
    if name == "metrics_overhead":
        return (f"metrics on {fmt_spread(s['on']['rps'], 0)}/s vs off {fmt_spread(s['off']['rps'], 0)}/s: "
                f"costs {fmt_spread(s['cost_pct'], 1)}% of throughput, "
                f"{fmt_spread(s.get('cpu_cost_pct'), 1)}% of CPU per request")
    if name == "refresh":
        return f"{fmt_spread(s['rps'], 0)} rotations/s"
    if name == "login":
        return (f"{fmt_spread(s['p50_ms'], 1)} ms per login; in the server, hash "
                f"{fmt_spread(s.get('hash_in_request_ms'), 1)} ms + the rest "
                f"{fmt_spread(s['overhead_ms'], 1)} ms (bare Argon2 verify in its own process "
                f"{fmt_spread(s['argon2_verify_ms'], 1)} ms)")
    if name == "audit_admin":
        pages = s["pages"]
        worst = max((p["server_ms"]["median"] or 0) for p in pages.values())
        return (f"{s['rows']:,} rows: slowest page {fmt(worst)} ms, request-id search "
                f"{fmt(pages['search_request_id']['server_ms']['median'])} ms (see pages)")
    if name == "provider_refresh":
        return (f"{s['connections']:,} due: all refreshed in {fmt(s.get('seconds'))} s (req/s = refreshes/s, "
                f"p50–p99 = each connection's wait from due to refreshed); "
                f"double refreshes {s['double_refreshes']}, lost tokens {s['lost_tokens']}; "
                f"worker CPU {fmt(s.get('worker_cpu_ms_per_refresh'))} ms per refresh")
    return ""


def markdown(document: dict) -> str:
    results = document["scenarios"]
    rows = []
    for name in ORDER:
        s = results.get(name)
        if s is None:
            continue
        if "skipped" in s or "error" in s:
            rows.append([name, "-", "-", "-", "-", "-", "-", "-", s.get("skipped") or s.get("error"), "-", "-"])
            continue
        rows.append(_row(name, s, _result(name, s), _vs_peer(name, s), s.get("met")))
        if s.get("peer"):
            result = PEER_RESULT.get(name, "") + _at_8(s["peer"])
            if name == "login":
                result += (f": {fmt_spread(s['peer']['p50_ms'], 1)} ms per login, "
                           f"{fmt_spread(s['peer'].get('latency_minus_bare_hash_ms'), 1)} ms over the bare hash")
            rows.append(_row(f"{name} (peer)", s["peer"], result, "1.0×", None))
    header = ["scenario", "req/s", "p50 ms", "p95 ms", "p99 ms", "server CPU ms/req", "errors", "peak RSS/worker MiB",
              "result", "vs peer", "target met"]
    machine = document.get("machine", {})
    parts = [
        f"Run {document.get('started_at')} ({'short' if document.get('short') else 'full'}), "
        f"{machine.get('cpus')} CPUs: server on {machine.get('server_cpus')}, load on "
        f"{machine.get('load_cpus')}; {', '.join(machine.get('servers') or ['gunicorn'])} "
        f"({machine.get('gunicorn')}); "
        f"`{document.get('command', 'bench/run.py')}`. Median (min–max) of "
        f"{document.get('options', {}).get('runs')} runs of {document.get('options', {}).get('duration')} s "
        f"at {document.get('options', {}).get('connections')} connections (login: 1).",
        "",
        markdown_table(header, rows),
    ]
    servers = results.get("servers")
    if servers and servers.get("scenarios"):
        kinds = servers["servers"]
        first = kinds[0]
        server_rows = []
        for scenario, sides in servers["scenarios"].items():
            for side, row in sides.items():
                cells = [scenario, side]
                for kind in kinds:
                    k = row.get(kind) or {}
                    cells.append(f"{fmt_spread(k.get('rps'), 0)} req/s, {fmt_spread(k.get('cpu_ms_per_request'), 2)} "
                                 f"ms CPU, p99 {fmt_spread(k.get('p99_ms'), 1)} ms")
                for kind in kinds[1:]:
                    vs = row.get("vs_first", {}).get(kind, {})
                    cells.append(f"req/s {fmt_spread(vs.get('rps'), 2)}×; CPU/req {fmt_spread(vs.get('cpu'), 2)}×")
                server_rows.append(cells)
        parts += ["", "Application servers, round by round (same pinning, same workers and threads):", "",
                  markdown_table(["scenario", "project", *kinds, *[f"{k} vs {first}" for k in kinds[1:]]],
                                 server_rows)]
    scaled = results.get("scale_out")
    if scaled:
        scale_rows = []
        for scenario, sides in scaled.items():
            for side, row in sides.items():
                scale_rows.append([
                    scenario, side,
                    f"{fmt_spread(row['one_core'].get('rps'), 0)} ({fmt_spread(row['one_core'].get('cpu_ms_per_request'), 2)} ms CPU)",
                    f"{fmt_spread(row['all_cores'].get('rps'), 0)} ({fmt_spread(row['all_cores'].get('cpu_ms_per_request'), 2)} ms CPU)",
                    f"{fmt_spread(row.get('scaling'), 2)}×", f"{fmt_spread(row.get('cpu_ratio'), 2)}×",
                ])
        parts += ["", "Scale-out: one worker on the server's core against one worker per core on every core "
                      "(wrk, PostgreSQL and Redis then share the cores with the server):", "",
                  markdown_table(["scenario", "project", "1 core req/s", "all cores req/s", "throughput ×",
                                  "CPU/req ×"], scale_rows)]
    audit = results.get("audit_admin")
    if audit and "pages" in audit:
        page_rows = [[name, fmt_spread(p["server_ms"], 1), fmt_spread(p["client_ms"], 1),
                      ",".join(map(str, p["status"])), f"`{p['url'][:90]}`"]
                     for name, p in audit["pages"].items()]
        parts += ["", f"audit_admin pages ({audit['rows']:,} audit rows):", "",
                  markdown_table(["page", "server ms", "client ms", "status", "url"], page_rows)]
    return "\n".join(parts)
