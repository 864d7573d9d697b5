"""`make bench`: Dashtam's hot paths under load in the production configuration.

    .venv/bin/python bench/run.py                 # the full run (docs/performance.md)
    .venv/bin/python bench/run.py --short         # make bench-ci: about 5 minutes
    .venv/bin/python bench/run.py --only me,login # some scenarios
    .venv/bin/python bench/run.py --server gunicorn,granian   # both application servers
    .venv/bin/python bench/run.py --scale-out     # also one worker per core on every core

It starts gunicorn (and Celery where a scenario needs it) with DJANGO_ENV=production
and generated secrets, on PostgreSQL (BENCH_DATABASE_URL, database dashtam_bench) and
Redis (BENCH_REDIS_URL db 8, broker on db 9 or BENCH_BROKER_URL), drives it with wrk
pinned to other cores, writes bench/results/<timestamp>.json and prints a markdown table.
Beside ours it builds the peer (bench/peer.py: a plain Django + DRF + simplejwt project,
in a temporary folder, on its own database BENCH_PEER_DATABASE_URL, by default the bench
database's name + "_peer") and runs it round by round with ours (--no-peer skips it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import peer, report, scenarios, seed, stack  # noqa: E402

ORDER = ["baseline", "me", "ratelimit_overhead", "metrics_overhead", "refresh", "login", "audit_admin", "provider_refresh"]


def options(args) -> scenarios.Options:
    short = args.short
    return scenarios.Options(
        short=short,
        runs=args.runs or (3 if short else 5),
        duration=args.duration or (3 if short else 10),
        warmup=1 if short else 3,
        connections=args.connections,
        threads=2,
        me_sessions=64 if short else 256,
        refresh_sessions=600 if short else 3000,
        login_users=50 if short else 200,
        audit_rows=args.audit_rows or (100_000 if short else 1_000_000),
        admin_samples=3 if short else 9,
        provider_connections=args.provider_connections or (1000 if short else 10_000),
        provider_latency_ms=50,
        provider_timeout_s=60 if short else 300,
        worker_concurrency=args.worker_concurrency,
        provider_beat_interval=args.provider_beat_interval,
        provider_settle_s=3 if short else 10,
        profile=args.profile,
        peer=not args.no_peer,
        servers=tuple(args.servers),
        scale_out=args.scale_out,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the short CI version (about 5 minutes with the peer)")
    parser.add_argument("--only", default="", help="comma-separated scenarios: " + ",".join(ORDER))
    parser.add_argument("--runs", type=int, default=0, help="runs per scenario (default 5, short 3)")
    parser.add_argument("--duration", type=float, default=0, help="seconds per run (default 10, short 3)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--audit-rows", type=int, default=0)
    parser.add_argument("--provider-connections", type=int, default=0)
    # 32: a refresh holds its thread for the provider's 50 ms, so 16 threads capped the run at
    # about 16 / (50 ms + ~15 ms for the rest: CPU, the database, Redis) = 250 refreshes/s with
    # the core ~70% busy.
    # The worker stays one process on the server's core; CPU per refresh is the same at 16 and 32.
    parser.add_argument("--worker-concurrency", type=int, default=32,
                        help="Celery worker threads for provider_refresh (one process, on the server cores)")
    parser.add_argument("--provider-beat-interval", type=int, default=5,
                        help="PROVIDER_REFRESH_INTERVAL for provider_refresh (production default: 60)")
    # One worker process per server core, threads for the time a request waits on PostgreSQL
    # and Redis. Two processes on one core doubled the tails (p99 250-285 ms against 75-105 ms
    # for one process with 8 threads), as the kernel time-slices them, at the same throughput.
    server_cores = len((stack.cpu_split()[0] or "0").split(","))
    parser.add_argument("--gunicorn-args", default=os.environ.get(
        "BENCH_GUNICORN_ARGS", f"--workers {server_cores} --worker-class gthread --threads 8"))
    parser.add_argument("--server", default="gunicorn",
                        help="application server(s), comma-separated: gunicorn, granian (WSGI). The first is the "
                             "table's; with two, every HTTP scenario runs under both, round by round")
    parser.add_argument("--no-peer", action="store_true",
                        help="skip the peer (the plain Django + DRF + simplejwt project of bench/peer.py)")
    parser.add_argument("--scale-out", action="store_true",
                        help="also run the HTTP scenarios with one worker per core on every core (wrk shares them)")
    parser.add_argument("--fresh", action="store_true",
                        help="drop and recreate the bench database (its seeded rows are kept otherwise)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the server's workers during one extra run of each HTTP scenario")
    parser.add_argument("--output", default="", help="results file (default bench/results/<timestamp>.json)")
    parser.add_argument("--report", default="", metavar="RESULTS_JSON",
                        help="print the tables of an earlier run and exit")
    args = parser.parse_args(argv)
    if args.report:
        print(report.markdown(json.loads(Path(args.report).read_text())))
        return 0

    wanted = [s.strip() for s in args.only.split(",") if s.strip()] or ORDER
    unknown = set(wanted) - set(ORDER)
    if unknown:
        parser.error("unknown scenario(s): " + ", ".join(sorted(unknown)))
    args.servers = [k.strip() for k in args.server.split(",") if k.strip()]
    if not args.servers or set(args.servers) - set(stack.SERVERS) or len(set(args.servers)) != len(args.servers):
        parser.error(f"--server: one or more of {', '.join(stack.SERVERS)}")
    opts = options(args)
    began = time.monotonic()

    def log(message: str) -> None:
        sys.stderr.write(f"[bench {time.monotonic() - began:6.1f}s] {message}\n")
        sys.stderr.flush()

    server_cpus, load_cpus = stack.cpu_split()
    if load_cpus:
        # This process (fixtures, the fake provider, polling) counts as load generator.
        os.sched_setaffinity(0, {int(c) for c in load_cpus.split(",")})
    stack.ensure_tools(log, servers=args.servers)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    log_dir = ROOT / "var" / "bench" / stamp
    log_dir.mkdir(parents=True, exist_ok=True)
    database_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dashtam_bench")
    redis_base = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
    broker_url = os.environ.get("BENCH_BROKER_URL", redis_base.rsplit("/", 1)[0] + "/9")
    smtp = stack.SmtpSink()
    config = stack.BenchConfig(
        database_url=database_url, redis_url=redis_base, broker_url=broker_url, smtp_port=smtp.port,
        server_cpus=server_cpus, load_cpus=load_cpus, log_dir=log_dir,
        gunicorn_args=args.gunicorn_args.split(),
    )
    stack.ensure_database(database_url, log, fresh=args.fresh)
    stack.flush_redis(redis_base)
    stack.flush_redis(broker_url)
    log("migrate and collectstatic (production settings)")
    config.manage("migrate", "--noinput")
    config.manage("collectstatic", "--noinput")
    # Events an earlier run left unsealed would otherwise be sealed by the worker, on the
    # server's core, in the middle of a scenario.
    log(config.manage("audit_seal").strip())

    os.environ.update(config.env())
    import django

    django.setup()
    users_needed = 1000 if "audit_admin" in wanted or not opts.short else max(opts.me_sessions, 200)
    bench = scenarios.Bench(config, opts, log, Path(tempfile.mkdtemp(prefix="dashtam-bench-")))
    bench.users = seed.users_ensure(count=users_needed)
    if opts.peer and has_peer_counterpart(wanted):
        made = peer.Peer(bench.work_dir / "peer", peer.database_url(database_url), log)
        try:
            made.prepare(fresh=args.fresh)
            bench.peer = made
        except Exception:  # noqa: BLE001 - without the peer, ours is still measured
            log("the peer could not be built; its columns stay empty:\n" + traceback.format_exc())

    results: dict = {}
    try:
        # A real worker beside the server, as in production: the mail that logins and
        # refreshes enqueue is sent while they run. provider_refresh brings its own.
        mail_worker = bench.celery("worker", "--pool", "threads", "--concurrency", "4",
                                   "--without-gossip", "--without-mingle")
        http = [s for s in ("baseline", "me", "ratelimit_overhead", "metrics_overhead") if s in wanted]
        if http:
            log("scenarios " + ", ".join(http) + " (interleaved rounds)")
            _guard(results, http, lambda: scenarios.http_group(bench, set(http)), log)
        for name in ("refresh", "login", "audit_admin", "provider_refresh"):
            if name == "provider_refresh":
                bench.stop(mail_worker)
            if name in wanted:
                log(f"scenario {name}")
                fn = getattr(scenarios, name)
                if name == "refresh":  # with the peer and the other servers beside it
                    _guard(results, [name], lambda: scenarios.refresh(bench), log)
                else:
                    _guard(results, [name], lambda fn=fn, name=name: {name: fn(bench)}, log)
    finally:
        bench.stop_all()
        smtp.stop()

    document = {
        "started_at": stamp,
        "command": "bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "short": opts.short,
        "machine": {
            "cpus": os.cpu_count(), "server_cpus": server_cpus, "load_cpus": load_cpus,
            "platform": platform.platform(), "python": platform.python_version(),
            "gunicorn": args.gunicorn_args,
            "servers": args.servers,
            "peer": bench.peer.db_url.rsplit("/", 1)[-1] if bench.peer else None,
            "scale_out": args.scale_out,
        },
        "options": vars(opts),
        "seconds": round(time.monotonic() - began, 1),
        "emails_received_by_the_smtp_sink": smtp.received,
        "scenarios": results,
    }
    output = Path(args.output) if args.output else ROOT / "bench" / "results" / f"{stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2, default=str))
    print(report.markdown(document))
    log(f"results: {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}; "
        f"server logs: {log_dir.relative_to(ROOT)}")
    return 1 if any(r.get("error") for r in results.values()) else 0


def has_peer_counterpart(wanted: list[str]) -> bool:
    """Whether a scenario with a peer counterpart runs (the HTTP group, refresh, login)."""
    return bool(set(wanted) & {"baseline", "me", "ratelimit_overhead", "metrics_overhead", "refresh", "login"})


def merge(results: dict, found: dict) -> None:
    """Add a group's results; the server and scale-out comparisons of both groups are merged."""
    for key, value in found.items():
        if key in ("servers", scenarios.SCALE_OUT) and key in results:
            if key == "servers":
                results[key]["scenarios"].update(value["scenarios"])
            else:
                results[key].update(value)
        else:
            results[key] = value


def _guard(results: dict, names: list[str], fn, log) -> None:
    """Run one scenario group; a missing endpoint skips it, a crash is reported, not fatal."""
    try:
        merge(results, fn())
    except scenarios.Unavailable as exc:
        log(f"  skipped: {exc}")
        for name in names:
            results[name] = {"skipped": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
        log("  failed:\n" + traceback.format_exc())
        for name in names:
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}


if __name__ == "__main__":
    sys.exit(main())
