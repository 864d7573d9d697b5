"""The scenarios of `make bench`. Each returns a JSON-able dict; none asserts on time.

Every HTTP scenario runs wrk several times after a warm-up and reports the median
with min and max of throughput and latency percentiles, the errors, and the peak
RSS of the server's worker processes.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench import peer, profile, seed, serverlog, stack, wrk
from bench.stats import percentile, spread

BASELINE_PATH = "/api/v1/bench/baseline"
ME_PATH = "/api/v1/auth/me"
REFRESH_PATH = "/api/v1/auth/refresh"
LOGIN_PATH = "/api/v1/auth/login"

TARGETS = {
    # Issue 18: against the peer (bench/peer.py), as ratios taken round by round in one run.
    "baseline": "server CPU per request ≤ 1.25× the peer's bare view",
    "me": "≥ 1.5× the peer's me throughput; p99 < 20 ms at 8 connections",
    "refresh": "≥ 3× the peer's rotations/s (and ≥ 300/s)",
    "login": "≤ Argon2 verify + 5 ms",
    "audit_admin": "every page < 300 ms (Security overview < 500 ms), request-id search < 50 ms "
                   "(server time, 1M rows)",
    "provider_refresh": "10,000 due connections refreshed in ≤ 60 s; 0 double refreshes, 0 lost tokens",
    "ratelimit_overhead": "limiter costs ≤ 10% of me's throughput",
    "metrics_overhead": "metrics cost ≤ 5% of me's throughput",
}
BASELINE_CPU_VS_PEER = 1.25
ME_VS_PEER = 1.5
REFRESH_VS_PEER = 3.0
ME_P99_MS_AT_8 = 20
LOGIN_OVERHEAD_MS = 5
AUDIT_OVERVIEW_LIMIT_MS = 500  # the Security overview's aggregates (issue 17)


@dataclass
class Options:
    short: bool
    runs: int
    duration: float
    warmup: float
    connections: int
    threads: int
    me_sessions: int
    refresh_sessions: int
    login_users: int
    audit_rows: int
    admin_samples: int
    provider_connections: int
    provider_latency_ms: int
    provider_timeout_s: float
    worker_concurrency: int
    provider_beat_interval: int = 5
    provider_settle_s: float = 5
    profile: bool = False
    # Issue 18: the peer beside ours, the application servers to compare (the first one is
    # the table's), and the two-core run.
    peer: bool = True
    servers: tuple[str, ...] = ("gunicorn",)
    scale_out: bool = False
    me_p99_connections: int = 8


class Unavailable(Exception):
    """The code a scenario measures has not landed (yet): the scenario is skipped."""


class Bench:
    def __init__(self, config: stack.BenchConfig, opts: Options, log, work_dir: Path):
        self.config = config
        self.opts = opts
        self.log = log
        self.work_dir = work_dir
        self.processes: list[stack.Process] = []
        self.users: list = []
        self.cache: dict = {}
        self.peer: peer.Peer | None = None

    # --- helpers ---------------------------------------------------------------------------
    def server(self, label: str, *, side: str = "ours", kind: str | None = None, scale_out: bool = False,
               **overrides: str) -> stack.Server:
        """One application server: ours (or the peer's), gunicorn (or ``kind``), on the server's
        cores, or with ``scale_out`` on every core with one worker process per core."""
        kind = kind or self.opts.servers[0]
        placement: dict = {}
        if scale_out:
            cores = ",".join(c for c in (self.config.server_cpus, self.config.load_cpus) if c)
            placement = {"cpus": cores or None, "workers": len(cores.split(",")) if cores else 2}
        if side == "peer":
            if self.peer is None:
                raise Unavailable("the peer is off (--no-peer)")
            server = stack.Server(self.config, f"peer-{label}", kind=kind, app=peer.APP, cwd=self.peer.folder,
                                  env=self.peer.env(), **placement)
            self.processes.append(server)
            return server
        if kind == "granian":
            # gunicorn itself turns X-Forwarded-Proto from 127.0.0.1 into the https scheme
            # (its forwarded_allow_ips); granian passes the header on, so ours must be told
            # a proxy is in front, as a granian deployment behind one would be.
            overrides.setdefault("TRUSTED_PROXY_COUNT", "1")
        # Metrics as production keeps them: gunicorn's workers share their samples through
        # files (prometheus_client's multiprocess mode), one fresh folder per server.
        if "PROMETHEUS_MULTIPROC_DIR" not in overrides:
            folder = self.work_dir / f"metrics-{label}-{uuid.uuid4().hex[:6]}"
            folder.mkdir(parents=True)
            overrides["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
        server = stack.Server(self.config, label, kind=kind, **placement, **overrides)
        self.processes.append(server)
        return server

    def celery(self, role: str, *args: str, **overrides: str) -> stack.Process:
        process = stack.celery(self.config, role, *args, **overrides)
        self.processes.append(process)
        return process

    def stop(self, process: stack.Process) -> None:
        process.stop()
        if process in self.processes:
            self.processes.remove(process)

    def stop_all(self) -> None:
        for process in list(self.processes):
            self.stop(process)

    def lines_file(self, name: str, lines: list[str]) -> Path:
        path = self.work_dir / f"{name}.txt"
        path.write_text("\n".join(lines) + "\n")
        return path

    def wrk(self, server: stack.Server, script: str, data: Path, path: str, *,
            connections: int | None = None, duration: float | None = None, extra: tuple[str, ...] = ()
            ) -> wrk.WrkResult:
        workers = server.workers()
        cpu_before = stack.cpu_seconds(workers)
        result = wrk.run(
            url=server.base_url, script=wrk.build_script(script, self.work_dir), args=[str(data), path, *extra],
            threads=self.opts.threads, connections=connections or self.opts.connections,
            duration=duration or self.opts.duration, cpus=self.config.load_cpus,
        )
        good = result.requests - result.non_2xx
        if good > 0:
            # CPU time is what the machine's other load cannot inflate much: the most
            # stable way to compare two endpoints on a busy machine.
            result.cpu_ms_per_request = round((stack.cpu_seconds(workers) - cpu_before) * 1000 / good, 3)
        return result

    def profiled(self, server: stack.Server, label: str, run) -> dict | None:
        """With --profile: py-spy on the server's workers during one more (uncounted) run."""
        if not self.opts.profile:
            return None
        running = profile.start(server.workers(), max(2, int(self.opts.duration)),
                                self.config.log_dir / "profiles", label)
        run()
        summary = profile.summarize(profile.finish(running))
        self.log(f"  profile of {label} ({summary['samples']} samples), our code inclusive %:")
        for name, pct in summary["ours"][:15]:
            self.log(f"    {pct:5.1f}  {name}")
        self.log("  libraries inclusive %: " + ", ".join(f"{n} {p}" for n, p in summary["libraries"][:12]))
        self.log("  self time %: " + ", ".join(f"{n} {p}" for n, p in summary["self"][:12]))
        return summary

    def access_tokens(self) -> Path:
        """Access tokens of distinct sessions of distinct users, for bearer GETs."""
        if "access" not in self.cache:
            pairs = seed.sessions_start(users=self.users, count=self.opts.me_sessions)
            self.cache["access"] = self.lines_file("access", [a for a, _ in pairs])
        return self.cache["access"]

    def peer_access_tokens(self) -> Path:
        """Access tokens simplejwt issued to the peer's users (one per login), for its me view."""
        if "peer_access" not in self.cache:
            made = self.peer.seed(users=max(self.opts.me_sessions, 200), access=self.opts.me_sessions,
                                  refresh_slices=0, refresh_per_slice=0)
            self.cache["peer_access"] = self.lines_file("peer-access", made["access"])
        return self.cache["peer_access"]


def summarize(results: list[wrk.WrkResult], server: stack.Server | None) -> dict:
    peaks = stack.peak_rss_mb(server.workers()) if server else {}
    return {
        "rps": spread(r.rps for r in results),
        "p50_ms": spread(r.p50_ms for r in results),
        "p95_ms": spread(r.p95_ms for r in results),
        "p99_ms": spread(r.p99_ms for r in results),
        "cpu_ms_per_request": spread(r.cpu_ms_per_request for r in results),
        "errors": sum(r.errors for r in results),
        "requests": sum(r.requests for r in results),
        "peak_rss_mb": round(max(peaks.values()), 1) if peaks else None,
        "peak_rss_total_mb": round(sum(peaks.values()), 1) if peaks else None,
        "workers": len(peaks),
        "runs": [r.as_dict() for r in results],
    }


def _endpoint_exists(server: stack.Server, method: str, path: str) -> bool:
    import requests

    response = requests.request(method, server.base_url + path, headers={"X-Forwarded-Proto": "https"},
                                json={} if method == "POST" else None, timeout=10)
    return response.status_code != 404 or response.json().get("instance") != path


# --- baseline, me, ratelimit_overhead, metrics_overhead, and the peer (interleaved rounds) -----
SCALE_OUT = "scale_out"


def variant_name(scenario: str, *, side: str = "ours", kind: str | None = None, primary: str = "gunicorn",
                 scale_out: bool = False) -> str:
    """A variant's key in the results: ``me``, ``peer:me``, ``granian:peer:me``, ``scale_out:me``..."""
    parts = [SCALE_OUT] if scale_out else []
    if kind and kind != primary:
        parts.append(kind)
    if side == "peer":
        parts.append("peer")
    return ":".join([*parts, scenario])


@dataclass(frozen=True)
class Variant:
    name: str
    server: str  # the key of the server it runs on
    path: str
    side: str = "ours"
    connections: int | None = None


def http_variants(opts: Options, wanted: set[str], *, peer_on: bool) -> tuple[list[Variant], dict[str, dict]]:
    """The variants of the HTTP group in round order, and the servers they run on.

    Each variant has a server of its own, idle until used, except ``me`` at 8
    connections, which runs on ``me``'s. Ours and the peer's alternate (baseline,
    peer:baseline, me, peer:me, ...), so drift in the machine's load hits both alike.
    """
    primary = opts.servers[0]
    want_me = bool(wanted & {"me", "ratelimit_overhead", "metrics_overhead"})
    variants: list[Variant] = []
    servers: dict[str, dict] = {}

    def add(scenario: str, path: str, side: str = "ours", kind: str | None = None, scale_out: bool = False,
            env: dict | None = None, connections: int | None = None, on: str | None = None) -> None:
        name = variant_name(scenario, side=side, kind=kind, primary=primary, scale_out=scale_out)
        key = on or name
        if key not in servers:
            servers[key] = {"side": side, "kind": kind or primary, "scale_out": scale_out, "env": env or {}}
        variants.append(Variant(name, key, path, side, connections))

    def pair(scenario: str, ours_path: str, peer_path: str, **kw) -> None:
        add(scenario, ours_path, **kw)
        if peer_on:
            add(scenario, peer_path, side="peer", **kw)

    pair("baseline", BASELINE_PATH, peer.BARE_PATH)
    if want_me:
        pair("me", ME_PATH, peer.ME_PATH)
        c8 = opts.me_p99_connections
        add(f"me_c{c8}", ME_PATH, connections=c8, on="me")
        if peer_on:
            add(f"me_c{c8}", peer.ME_PATH, side="peer", connections=c8, on="peer:me")
    if "ratelimit_overhead" in wanted:
        add("me_ratelimit_off", ME_PATH, env={"RATELIMIT_ENABLE": "false"})
    if "metrics_overhead" in wanted:
        add("me_metrics_off", ME_PATH, env={"METRICS_ENABLED": "false"})
    for kind in opts.servers[1:]:
        pair("baseline", BASELINE_PATH, peer.BARE_PATH, kind=kind)
        if want_me:
            pair("me", ME_PATH, peer.ME_PATH, kind=kind)
    if opts.scale_out:
        pair("baseline", BASELINE_PATH, peer.BARE_PATH, scale_out=True)
        if want_me:
            pair("me", ME_PATH, peer.ME_PATH, scale_out=True)
    return variants, servers


def _ratios(results: dict[str, list[wrk.WrkResult]], top: str, bottom: str, attr: str = "rps") -> dict:
    """Round by round ``top / bottom`` of one measure (rps, cpu_ms_per_request)."""
    if top not in results or bottom not in results:
        return spread([])
    return spread(getattr(a, attr) / getattr(b, attr) for a, b in zip(results[top], results[bottom], strict=True)
                  if getattr(a, attr) and getattr(b, attr))


def http_group(bench: Bench, wanted: set[str]) -> dict:
    """baseline, me and me-without-rate-limits, each on its own idle-until-used server, and the peer.

    Rounds are interleaved (baseline, peer:baseline, me, peer:me, me-off, baseline, ...),
    so drift in the machine's load hits every variant alike, and ratios are taken per round.
    The me-off variants switch one setting: {"RATELIMIT_ENABLE": "false"} and
    {"METRICS_ENABLED": "false"}.
    """
    opts = bench.opts
    variants, specs = http_variants(opts, wanted, peer_on=bench.peer is not None)
    needs_tokens = any(v.path == ME_PATH for v in variants)
    tokens = {"ours": bench.access_tokens() if needs_tokens else bench.lines_file("none", ["-"]),
              "peer": bench.peer_access_tokens() if bench.peer is not None and "peer:me" in {
                  v.name for v in variants} else bench.lines_file("none", ["-"])}
    servers: dict[str, stack.Server] = {}
    try:
        for key, spec in specs.items():
            servers[key] = bench.server(key.replace(":", "-"), side=spec["side"], kind=spec["kind"],
                                        scale_out=spec["scale_out"], **spec["env"])
        for v in variants:
            if v.side == "ours" and v.path != BASELINE_PATH and not _endpoint_exists(servers[v.server], "GET", v.path):
                raise Unavailable(f"{v.path} is not routed yet")
        results: dict[str, list[wrk.WrkResult]] = {v.name: [] for v in variants}
        warmed = set()
        for v in variants:
            if v.server not in warmed:
                warmed.add(v.server)
                bench.wrk(servers[v.server], "bearer_get", tokens[v.side], v.path, duration=opts.warmup,
                          connections=v.connections)
        for round_no in range(opts.runs):
            for v in variants:
                results[v.name].append(bench.wrk(servers[v.server], "bearer_get", tokens[v.side], v.path,
                                                  connections=v.connections))
            bench.log("  round {}: {}".format(round_no + 1, ", ".join(
                f"{n} {results[n][-1].rps:,.0f}/s p99 {results[n][-1].p99_ms:.1f} ms "
                f"cpu {results[n][-1].cpu_ms_per_request or 0:.2f} ms" for n in results)))
        out = {v.name: dict(summarize(results[v.name], servers[v.server]), path=v.path,
                            connections=v.connections or opts.connections) for v in variants}
        for v in variants:
            if v.connections:
                continue
            prof = bench.profiled(servers[v.server], v.name, lambda v=v: bench.wrk(
                servers[v.server], "bearer_get", tokens[v.side], v.path))
            if prof:
                out[v.name]["profile"] = prof
    finally:
        for server in servers.values():
            bench.stop(server)
    return http_report(opts, wanted, results, out)


def http_report(opts: Options, wanted: set[str], results: dict[str, list[wrk.WrkResult]], out: dict) -> dict:
    """The HTTP group's scenarios from its variants: ratios to the baseline and to the peer per round."""
    c8 = f"me_c{opts.me_p99_connections}"
    has_peer = "peer:baseline" in out
    baseline = dict(out["baseline"], path=BASELINE_PATH, target=TARGETS["baseline"])
    if has_peer:
        baseline.update(
            peer=out["peer:baseline"],
            # Cost: our CPU per request over the peer's (≤ 1.25); throughput: ours over the peer's.
            vs_peer={"cpu": _ratios(results, "baseline", "peer:baseline", "cpu_ms_per_request"),
                     "rps": _ratios(results, "baseline", "peer:baseline")})
        cpu = baseline["vs_peer"]["cpu"]["median"]
        baseline["met"] = bool(cpu is not None and cpu <= BASELINE_CPU_VS_PEER and baseline["errors"] == 0)
    report = {"baseline": baseline}
    if "me" in out:
        cpu_ratios = _ratios(results, "baseline", "me", "cpu_ms_per_request")
        me = dict(out["me"], path=ME_PATH, ratio_to_baseline=_ratios(results, "me", "baseline"),
                  cpu_ratio_to_baseline=cpu_ratios, target=TARGETS["me"])
        if c8 in out:
            me["at_8"] = out[c8]
        met = me["errors"] == 0 and (me.get("at_8", {}).get("p99_ms", {}).get("median") or 1e9) < ME_P99_MS_AT_8
        if has_peer and "peer:me" in out:
            me.update(peer=out["peer:me"], vs_peer={
                "rps": _ratios(results, "me", "peer:me"),
                "cpu": _ratios(results, "me", "peer:me", "cpu_ms_per_request")})
            if f"peer:{c8}" in out:
                me["peer"] = dict(me["peer"], at_8=out[f"peer:{c8}"])
            met = met and (me["vs_peer"]["rps"]["median"] or 0) >= ME_VS_PEER
        me["met"] = bool(met)
        report["me"] = me
    if "me_ratelimit_off" in out:
        report["ratelimit_overhead"] = _overhead(results, out, "me_ratelimit_off", "ratelimit_overhead", limit=10)
    if "me_metrics_off" in out:
        report["metrics_overhead"] = _overhead(results, out, "me_metrics_off", "metrics_overhead", limit=5)
    report = {k: v for k, v in report.items() if k in wanted or k == "baseline"}
    kinds = compare_servers(opts, results, out, ("baseline", "me"))
    if kinds:
        report["servers"] = kinds
    scaled = compare_scale_out(results, out, ("baseline", "me"))
    if scaled:
        report[SCALE_OUT] = scaled
    return report


def compare_servers(opts: Options, results: dict, out: dict, scenarios: tuple[str, ...]) -> dict:
    """{scenario: {side: {kind: summary, "vs_first": {kind: ratios}}}} when several servers ran."""
    if len(opts.servers) < 2:
        return {}
    primary = opts.servers[0]
    table: dict = {}
    for scenario in scenarios:
        for side in ("ours", "peer"):
            first = variant_name(scenario, side=side, primary=primary)
            if first not in out:
                continue
            row = {primary: _brief(out[first]), "vs_first": {}}
            for kind in opts.servers[1:]:
                name = variant_name(scenario, side=side, kind=kind, primary=primary)
                if name in out:
                    row[kind] = _brief(out[name])
                    row["vs_first"][kind] = {"rps": _ratios(results, name, first),
                                             "cpu": _ratios(results, name, first, "cpu_ms_per_request")}
            table.setdefault(scenario, {})[side] = row
    return {"servers": list(opts.servers), "scenarios": table}


def compare_scale_out(results: dict, out: dict, scenarios: tuple[str, ...]) -> dict:
    """{scenario: {side: {"one_core", "all_cores", "scaling"}}} when --scale-out ran."""
    table: dict = {}
    for scenario in scenarios:
        for side in ("ours", "peer"):
            one = variant_name(scenario, side=side)
            two = variant_name(scenario, side=side, scale_out=True)
            if one in out and two in out:
                table.setdefault(scenario, {})[side] = {
                    "one_core": _brief(out[one]), "all_cores": _brief(out[two]),
                    "scaling": _ratios(results, two, one),
                    "cpu_ratio": _ratios(results, two, one, "cpu_ms_per_request"),
                    "workers": out[two].get("workers"),
                }
    return table


def _brief(summary: dict) -> dict:
    return {k: summary.get(k) for k in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_request", "errors", "workers")}


def _overhead(results: dict, out: dict, off_name: str, scenario: str, *, limit: float) -> dict:
    """What a feature costs ``me``: its throughput and CPU with the feature on vs off, per round."""
    costs = [100 * (1 - on.rps / off.rps)
             for on, off in zip(results["me"], results[off_name], strict=True) if off.rps]
    cpu_costs = [100 * (1 - off.cpu_ms_per_request / on.cpu_ms_per_request)
                 for on, off in zip(results["me"], results[off_name], strict=True)
                 if on.cpu_ms_per_request and off.cpu_ms_per_request]
    return {
        "on": out["me"], "off": out[off_name], "cost_pct": spread(costs), "cpu_cost_pct": spread(cpu_costs),
        "target": TARGETS[scenario], "met": spread(costs)["median"] <= limit,
        **{k: out[off_name][k] for k in ("rps", "p50_ms", "p95_ms", "p99_ms", "errors", "peak_rss_mb",
                                         "cpu_ms_per_request")},
    }


# --- refresh ------------------------------------------------------------------------------------
def refresh(bench: Bench) -> dict:
    """Rotations per second over thousands of distinct sessions; each run gets its own.

    With the peer, its simplejwt TokenRefreshView (rotation + blacklist) runs round by
    round with ours (ours, peer, ours, ...) on its own server, over as many sessions
    issued by simplejwt; likewise the other application servers and the two-core run.
    """
    opts = bench.opts
    primary = opts.servers[0]
    plan = [("ours", primary, False)]
    if bench.peer is not None:
        plan.append(("peer", primary, False))
    for kind in opts.servers[1:]:
        plan += [("ours", kind, False)] + ([("peer", kind, False)] if bench.peer is not None else [])
    if opts.scale_out:
        plan += [("ours", primary, True)] + ([("peer", primary, True)] if bench.peer is not None else [])
    names = [variant_name("refresh", side=side, kind=kind, primary=primary, scale_out=scale)
             for side, kind, scale in plan]
    paths = {"ours": REFRESH_PATH, "peer": peer.REFRESH_PATH}
    slices_needed = opts.runs + 1 + int(opts.profile)
    servers: dict[str, stack.Server] = {}
    try:
        for name, (side, kind, scale) in zip(names, plan, strict=True):
            servers[name] = bench.server(name.replace(":", "-"), side=side, kind=kind, scale_out=scale)
        if not _endpoint_exists(servers["refresh"], "POST", REFRESH_PATH):
            raise Unavailable(f"{REFRESH_PATH} is not routed yet")
        started = time.monotonic()
        slices: dict[str, list[Path]] = {}
        for name, (side, _, _) in zip(names, plan, strict=True):
            if side == "ours":
                files = []
                for _ in range(slices_needed):
                    pairs = seed.sessions_start(users=bench.users, count=opts.refresh_sessions)
                    files.append(bench.lines_file(f"{name}-{len(files)}".replace(":", "-"), [r for _, r in pairs]))
            else:
                made = bench.peer.seed(users=max(opts.me_sessions, 200), access=0, refresh_slices=slices_needed,
                                       refresh_per_slice=opts.refresh_sessions)
                files = [bench.lines_file(f"{name}-{i}".replace(":", "-"), tokens)
                         for i, tokens in enumerate(made["refresh"])]
            slices[name] = files
        bench.log(f"  {len(names) * slices_needed * opts.refresh_sessions:,} sessions started in "
                  f"{time.monotonic() - started:.1f} s")
        for name, (side, _, _) in zip(names, plan, strict=True):
            bench.wrk(servers[name], "refresh", slices[name][0], paths[side], duration=opts.warmup)
        results: dict[str, list[wrk.WrkResult]] = {name: [] for name in names}
        for run_no in range(1, opts.runs + 1):
            for name, (side, _, _) in zip(names, plan, strict=True):
                results[name].append(bench.wrk(servers[name], "refresh", slices[name][run_no], paths[side]))
            bench.log("  round {}: {}".format(run_no, ", ".join(
                f"{n} {results[n][-1].rps:,.0f} rotations/s p99 {results[n][-1].p99_ms:.1f} ms "
                f"cpu {results[n][-1].cpu_ms_per_request or 0:.2f} ms, {results[n][-1].errors} errors"
                for n in names)))
        out = {name: dict(summarize(results[name], servers[name]), path=paths[side])
               for name, (side, _, _) in zip(names, plan, strict=True)}
        for name, (side, _, _) in zip(names, plan, strict=True):
            prof = bench.profiled(servers[name], name, lambda n=name, sd=side: bench.wrk(
                servers[n], "refresh", slices[n][-1], paths[sd]))
            out[name]["profile"] = prof
    finally:
        for server in servers.values():
            bench.stop(server)
    return refresh_report(opts, results, out)


def refresh_report(opts: Options, results: dict, out: dict) -> dict:
    report = dict(out["refresh"], sessions_per_run=opts.refresh_sessions, target=TARGETS["refresh"])
    met = report["rps"]["median"] >= 300 and report["errors"] == 0
    if "peer:refresh" in out:
        report.update(peer=out["peer:refresh"], vs_peer={
            "rps": _ratios(results, "refresh", "peer:refresh"),
            "cpu": _ratios(results, "refresh", "peer:refresh", "cpu_ms_per_request")})
        met = met and (report["vs_peer"]["rps"]["median"] or 0) >= REFRESH_VS_PEER
    report["met"] = bool(met)
    extra = {}
    kinds = compare_servers(opts, results, out, ("refresh",))
    if kinds:
        extra["servers"] = kinds
    scaled = compare_scale_out(results, out, ("refresh",))
    if scaled:
        extra[SCALE_OUT] = scaled
    return {"refresh": report, **extra}


# --- login ----------------------------------------------------------------------------------------
HASH_SNIPPET = """
import statistics, sys, time, django
django.setup()
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password
encoded = get_user_model().objects.get(email=sys.argv[1]).password
check_password(sys.argv[2], encoded)
print("ready", flush=True)
for line in sys.stdin:
    times = []
    for _ in range(int(line)):
        t = time.perf_counter(); ok = check_password(sys.argv[2], encoded); times.append(time.perf_counter() - t)
        assert ok
    print(" ".join(str(t * 1000) for t in times), flush=True)
"""


class HashTimer:
    """The raw Argon2 check in a process of its own on the server's cores, same settings.

    Kept alive between the login runs so each round's hash time is measured right
    next to that round's logins: the machine's load drifts, the pairing does not.
    """

    def __init__(self, bench: Bench):
        argv = (["taskset", "-c", bench.config.server_cpus] if bench.config.server_cpus else []) + [
            sys.executable, "-c", HASH_SNIPPET, seed.EMAIL.format(0), seed.PASSWORD]
        self.proc = subprocess.Popen(argv, cwd=stack.ROOT, env=bench.config.env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the hash timer did not start")

    def sample(self, n: int) -> list[float]:
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        return [float(v) for v in self.proc.stdout.readline().split()]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)


def login(bench: Bench) -> dict:
    """Milliseconds per login (one connection, so latency is the cost of one login).

    The overhead is read per request from the server's own access line: its
    ``duration_ms`` minus its ``hash_ms`` (the time the password hasher took inside
    that very request), so the hash and the rest are timed together and the
    machine's drift cannot fall between them. Each round also times the bare hash
    check in a process of its own, as a cross-check of what the hash costs.
    """
    import statistics

    opts = bench.opts
    users = bench.users[: opts.login_users]
    data = bench.lines_file("login", [f"{u.email} {seed.PASSWORD}" for u in users])
    server = bench.server("login")
    peer_server = peer_data = None
    peer_results: list[wrk.WrkResult] = []
    peer_latency_overhead: list[float] = []
    timer = HashTimer(bench)
    hashes: list[float] = []
    in_request_hash: list[float] = []
    overhead: list[float] = []
    latency_overhead: list[float] = []
    try:
        if not _endpoint_exists(server, "POST", LOGIN_PATH):
            raise Unavailable(f"{LOGIN_PATH} is not routed yet")
        bench.wrk(server, "login", data, LOGIN_PATH, connections=1, duration=opts.warmup)
        if bench.peer is not None:
            # simplejwt's TokenObtainPairView through axes' backend, Django's Argon2 (the same
            # parameters as ours): its latency over the bare hash, the same measure as ours.
            count = max(opts.me_sessions, 200)
            bench.peer.seed(users=count, access=0, refresh_slices=0, refresh_per_slice=0)
            peer_data = bench.lines_file("peer-login", [f"{peer.user_email(i)} {bench.peer.password}"
                                                        for i in range(min(count, opts.login_users))])
            peer_server = bench.server("login", side="peer")
            bench.wrk(peer_server, "login", peer_data, peer.LOGIN_PATH, connections=1, duration=opts.warmup,
                      extra=("username",))
        results = []
        for _ in range(opts.runs):
            offset = server.log_path.stat().st_size
            results.append(bench.wrk(server, "login", data, LOGIN_PATH, connections=1))
            lines = serverlog.access_lines(server.log_path, offset=offset, route="api/v1/auth/login")
            paired = [(line["duration_ms"], line["hash_ms"]) for line in lines
                      if line.get("status") == 200 and "hash_ms" in line]
            if not paired:
                raise RuntimeError("no login access line carries hash_ms")
            round_overhead = statistics.median(d - h for d, h in paired)
            overhead.append(round_overhead)
            in_request_hash.extend(h for _, h in paired)
            if peer_server is not None:
                peer_results.append(bench.wrk(peer_server, "login", peer_data, peer.LOGIN_PATH, connections=1,
                                              extra=("username",)))
            round_hashes = timer.sample(max(5, min(30, results[-1].requests)))
            hashes.extend(round_hashes)
            latency_overhead.append(results[-1].p50_ms - statistics.median(round_hashes))
            if peer_results:
                peer_latency_overhead.append(peer_results[-1].p50_ms - statistics.median(round_hashes))
                bench.log(f"  peer login p50 {peer_results[-1].p50_ms:.1f} ms, "
                          f"{peer_results[-1].errors} errors")
            bench.log(f"  login p50 {results[-1].p50_ms:.1f} ms; in the server {len(paired)} logins: hash "
                      f"{statistics.median(h for _, h in paired):.1f} ms, the rest {round_overhead:.1f} ms; "
                      f"bare Argon2 verify {statistics.median(round_hashes):.1f} ms; {results[-1].errors} errors")
        out = summarize(results, server)
        out["profile"] = bench.profiled(server, "login", lambda: bench.wrk(
            server, "login", data, LOGIN_PATH, connections=1))
        if peer_server is not None:
            out["peer"] = dict(summarize(peer_results, peer_server), path=peer.LOGIN_PATH,
                               latency_minus_bare_hash_ms=spread(peer_latency_overhead))
            out["vs_peer"] = {
                "latency_minus_bare_hash_ms": spread(o - p for o, p in zip(latency_overhead, peer_latency_overhead,
                                                                            strict=True)),
                "rps": spread(o.rps / p.rps for o, p in zip(results, peer_results, strict=True) if p.rps),
                "cpu": spread(o.cpu_ms_per_request / p.cpu_ms_per_request
                              for o, p in zip(results, peer_results, strict=True)
                              if o.cpu_ms_per_request and p.cpu_ms_per_request),
            }
    finally:
        timer.close()
        bench.stop(server)
        if peer_server is not None:
            bench.stop(peer_server)
    out.update(path=LOGIN_PATH, argon2_verify_ms=spread(hashes), hash_in_request_ms=spread(in_request_hash),
               overhead_ms=spread(overhead), latency_minus_bare_hash_ms=spread(latency_overhead),
               target=TARGETS["login"])
    out["met"] = out["overhead_ms"]["median"] <= LOGIN_OVERHEAD_MS and out["errors"] == 0
    return out


# --- audit_admin --------------------------------------------------------------------------------
def audit_admin(bench: Bench) -> dict:
    """Server time per admin page over a million audit rows (from the server's access log)."""
    import requests
    from django.conf import settings

    opts = bench.opts
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        raise Unavailable("needs PostgreSQL")
    found = seed.audit_seed(rows=opts.audit_rows, users=bench.users[:1000], log=bench.log)
    staff = seed.staff_ensure()
    cookie = seed.admin_cookie(user=staff)
    staff_access = seed.sessions_start(users=[staff], count=1)[0][0]
    base = "/admin/audit/auditevent/"
    # The audit admin's own parameters (audit/admin.py): action, created_from/created_to,
    # q (exact request id, IP or email), actor.
    pages = {
        "changelist": base,
        "filter_action_date": f"{base}?action={found['action']}"
                              f"&created_from={found['since']}&created_to={found['until']}",
        "search_request_id": f"{base}?q={found['request_id']}",
        "user_trail": f"{base}?actor={found['actor_id']}",
        "changelist_page_50": f"{base}?p=50",
        "filter_action_group": f"{base}?action=group:session",
        # The Security overview's indexed aggregates (issue 17: < 500 ms at 1M rows).
        "overview_24h": f"{base}overview/?window=24h",
        "overview_7d": f"{base}overview/?window=7d",
        "overview_30d": f"{base}overview/?window=30d",
        "api_events": "/api/v1/admin/audit/events",
        "api_request_id": f"/api/v1/admin/audit/events?request_id={found['request_id']}",
    }
    server = bench.server("audit_admin")
    results: dict = {}
    try:
        session = requests.Session()
        for name, url in pages.items():
            headers = {"X-Forwarded-Proto": "https"}
            if url.startswith("/api/"):
                headers["Authorization"] = f"Bearer {staff_access}"
            else:
                headers["Cookie"] = cookie
            ids, client_ms, statuses = [], [], set()
            for i in range(opts.admin_samples + 1):
                rid = f"bench-{name}-{uuid.uuid4().hex[:12]}"
                started = time.perf_counter()
                response = session.get(server.base_url + url, headers=dict(headers, **{"X-Request-ID": rid}),
                                       allow_redirects=False, timeout=120)
                elapsed = (time.perf_counter() - started) * 1000
                statuses.add(response.status_code)
                if i:  # the first request warms caches and is not counted
                    ids.append(rid)
                    client_ms.append(elapsed)
            time.sleep(0.3)  # let the access lines reach the log
            server_ms = serverlog.durations(server.log_path, set(ids))
            results[name] = {
                "url": url, "status": sorted(statuses),
                "server_ms": spread(server_ms.values()), "client_ms": spread(client_ms),
            }
            bench.log(f"  {name}: {results[name]['server_ms']['median']} ms server, statuses {sorted(statuses)}")
        rss = stack.peak_rss_mb(server.workers())
    finally:
        bench.stop(server)

    def ok(name, limit):
        page = results[name]
        return page["status"] == [200] and (page["server_ms"]["median"] or 1e9) < limit

    out = {
        "rows": found["rows"], "pages": results, "target": TARGETS["audit_admin"],
        "peak_rss_mb": round(max(rss.values()), 1) if rss else None,
        "errors": sum(1 for p in results.values() if p["status"] != [200]),
    }
    overview = [n for n in pages if n.startswith("overview_")]
    out["met"] = (all(ok(n, 300) for n in pages if n not in overview)
                  and all(ok(n, AUDIT_OVERVIEW_LIMIT_MS) for n in overview)
                  and ok("search_request_id", 50) and ok("api_request_id", 50))
    return out


# --- provider_refresh ----------------------------------------------------------------------------
def _celery_ready(timeout: float = 60) -> None:
    """Until a worker answers a ping on the broker."""
    from dashtam.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.control.ping(timeout=1.0):
            return
    raise RuntimeError("the Celery worker did not answer in time")


def provider_refresh(bench: Bench) -> dict:
    """10,000 due connections, a slow fake Schwab, the real beat and worker: time and correctness.

    The worker starts first; the connections are seeded due; beat starts (t=0) and
    fans out refresh tasks on its schedule. Done when every connection has been
    refreshed once; then a few more seconds pass with beat running, so a stray
    second refresh would still be counted.
    """
    from django.utils import timezone

    from bench.schwab import SchwabServer
    from providers.models import ProviderToken

    opts = bench.opts
    fake = SchwabServer(latency=opts.provider_latency_ms / 1000, tls=True)
    celery_dir = bench.config.log_dir / "celery"
    celery_dir.mkdir(parents=True, exist_ok=True)  # beat's schedule file lives here
    env = {
        "SCHWAB_CLIENT_ID": "bench-client",
        "SCHWAB_CLIENT_SECRET": "bench-secret",
        "SCHWAB_REDIRECT_URI": "https://app.bench.invalid/oauth/schwab/callback",
        "SCHWAB_API_BASE_URL": fake.base_url,
        "REQUESTS_CA_BUNDLE": str(fake.ca_bundle),
        # The bench measures our pipeline; Schwab's real budget is a separate limit.
        "SCHWAB_RATE_LIMIT": "100000000/m",
        "PROVIDER_REFRESH_INTERVAL": str(opts.provider_beat_interval),
        "CELERY_DATA_DIR": str(celery_dir),
    }
    worker = beat = None
    try:
        worker = bench.celery("worker", "--pool", "threads", "--concurrency", str(opts.worker_concurrency),
                              "--without-gossip", "--without-mingle", **env)
        _celery_ready()
        count = opts.provider_connections
        started = time.monotonic()
        ids = seed.provider_connections_reset(count=count, users=bench.users, ledger=fake.ledger,
                                              expires_at=timezone.now() + timedelta_seconds(30))
        bench.log(f"  {len(ids):,} due connections seeded in {time.monotonic() - started:.1f} s")
        bench_tokens = ProviderToken.objects.filter(connection__alias__startswith="bench-")
        worker_cpu_before = stack.cpu_seconds(worker.workers())
        t0 = time.monotonic()
        beat = bench.celery("beat", **env)
        done_at = None
        progress = []
        last_log = 0.0
        profiling = None
        while time.monotonic() - t0 < opts.provider_timeout_s:
            time.sleep(0.5)
            if opts.profile and profiling is None and time.monotonic() - t0 > opts.provider_beat_interval + 1:
                profiling = profile.start(worker.workers(), 10, bench.config.log_dir / "profiles", "worker")
            refreshed = bench_tokens.filter(refresh_count__gte=1).count()
            elapsed = time.monotonic() - t0
            progress.append((round(elapsed, 1), refreshed))
            if elapsed - last_log >= 10:
                bench.log(f"  {elapsed:5.1f} s: {refreshed:,} of {count:,} refreshed")
                last_log = elapsed
            if refreshed >= count:
                done_at = elapsed
                break
            if not worker.alive() or not beat.alive():
                raise RuntimeError("the Celery worker or beat exited; see " + str(bench.config.log_dir))
        worker_cpu = stack.cpu_seconds(worker.workers()) - worker_cpu_before
        time.sleep(opts.provider_settle_s)
        rss = stack.peak_rss_mb(worker.workers() + beat.workers())
        worker_profile = None
        if profiling is not None:
            worker_profile = profile.summarize(profile.finish(profiling))
            bench.log(f"  profile of the worker ({worker_profile['samples']} samples), our code inclusive %:")
            for name, pct in worker_profile["ours"][:15]:
                bench.log(f"    {pct:5.1f}  {name}")
            bench.log("  self time %: " + ", ".join(f"{n} {p}" for n, p in worker_profile["self"][:12]))
    finally:
        for process in (beat, worker):
            if process is not None:
                bench.stop(process)
        fake.stop()

    stored = seed.provider_refresh_tokens()
    lost = fake.ledger.lost(stored)
    # Per connection: seconds from beat's start (the moment they were all due) to its refresh.
    waits_ms = [(at - t0) * 1000 for at in fake.ledger.first_refresh_at.values()]
    refreshed_once = bench_tokens.filter(refresh_count=1).count()
    first = next((t for t, n in progress if n > 0), None)
    out = {
        "connections": count,
        "seconds": round(done_at, 1) if done_at is not None else None,
        # The table's columns: refreshes per second, and the time each connection waited.
        "rps": spread([fake.ledger.refreshes / done_at] if done_at else []),
        "p50_ms": spread([percentile(waits_ms, 50)] if waits_ms else []),
        "p95_ms": spread([percentile(waits_ms, 95)] if waits_ms else []),
        "p99_ms": spread([percentile(waits_ms, 99)] if waits_ms else []),
        "first_refresh_after_s": first,
        "refreshed": fake.ledger.refreshes,
        "refreshed_exactly_once": refreshed_once,
        "double_refreshes": fake.ledger.double_refreshes,
        "lost_tokens": len(lost),
        "unknown_tokens": fake.ledger.unknown_tokens,
        "refreshes_per_s": round(fake.ledger.refreshes / (fake.ledger.last_at - fake.ledger.first_at), 1)
        if fake.ledger.first_at and fake.ledger.last_at and fake.ledger.last_at > fake.ledger.first_at else None,
        "worker_cpu_ms_per_refresh": round(worker_cpu * 1000 / fake.ledger.refreshes, 2)
        if fake.ledger.refreshes else None,
        "provider_latency_ms": opts.provider_latency_ms,
        "beat_interval_s": opts.provider_beat_interval,
        "worker": f"--pool threads --concurrency {opts.worker_concurrency}",
        "peak_rss_mb": round(max(rss.values()), 1) if rss else None,
        "errors": fake.ledger.unknown_tokens + fake.ledger.double_refreshes + len(lost),
        "progress": progress[:: max(1, len(progress) // 60)],
        "profile": worker_profile,
        "target": TARGETS["provider_refresh"],
    }
    out["met"] = bool(done_at is not None and done_at <= 60 and count >= 10_000
                      and out["double_refreshes"] == 0 and out["lost_tokens"] == 0)
    bench.log(f"  all refreshed in {out['seconds']} s; double refreshes {out['double_refreshes']}, "
              f"lost tokens {out['lost_tokens']}; worker CPU {out['worker_cpu_ms_per_refresh']} ms per refresh")
    return out


def timedelta_seconds(seconds: float):
    from datetime import timedelta

    return timedelta(seconds=seconds)
