"""CPU per request of the hot paths, the WSGI application called in this one process.

    .venv/bin/python bench/inprocess.py baseline,me 2000 5
    .venv/bin/py-spy record -r 400 --format raw -o me.folded -- .venv/bin/python bench/inprocess.py me 4000 1

No server, no threads, no network between the client and Django: what it measures is the
CPU our code and its libraries spend on a request (``time.process_time``), and under
py-spy every sample is work or a wait on PostgreSQL or Redis, never an idle thread. It
uses the bench's production environment, database and secrets (``bench/run.py`` creates
them; run it once first) with the headers the load generator sends. The access log goes
to ``var/bench/inprocess.log``, as a server's goes to its log file.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import scenarios, seed, stack  # noqa: E402

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"


def environ(method: str, path: str, headers: dict | None = None, body: bytes = b"") -> dict:
    # gunicorn trusts X-Forwarded-Proto from 127.0.0.1 and serves the request as https.
    env = {"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
           "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "443", "SERVER_PROTOCOL": "HTTP/1.1",
           "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(body),
           "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False,
           "wsgi.run_once": False, "wsgi.version": (1, 0), "CONTENT_LENGTH": str(len(body)),
           "CONTENT_TYPE": "application/json", "HTTP_HOST": "127.0.0.1",
           "HTTP_X_FORWARDED_PROTO": "https", "HTTP_ACCEPT": "application/json", "HTTP_USER_AGENT": UA}
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def main(argv: list[str]) -> int:
    which = (argv[0] if argv else "baseline,me").split(",")
    count = int(argv[1]) if len(argv) > 1 else 2000
    rounds = int(argv[2]) if len(argv) > 2 else 5
    config = stack.BenchConfig(
        database_url=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dashtam_bench"),
        redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"),
        broker_url=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/9"),
        smtp_port=1, server_cpus=None, load_cpus=None, log_dir=ROOT / "var" / "bench", gunicorn_args=[])
    os.environ.update(config.env())
    log_path = ROOT / "var" / "bench" / "inprocess.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")  # open for the life of the process
    os.dup2(log.fileno(), 2)

    import django

    django.setup()
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()

    def call(env: dict) -> tuple[str, bytes]:
        answer = {}

        def start_response(status, headers, exc_info=None):
            answer["status"] = status

        result = app(env, start_response)
        body = b"".join(result)
        result.close()
        return answer["status"], body

    def measure(name: str, make_env) -> None:
        for i in range(200):  # warm: the URLconf's import, the caches' first fills
            call(make_env(i))
        per_request = []
        for _ in range(rounds):
            envs = [make_env(i) for i in range(count)]
            started = time.process_time()
            for env in envs:
                status, body = call(env)
            per_request.append((time.process_time() - started) * 1e6 / count)
            if not status.startswith("2"):
                raise SystemExit(f"{name}: {status} {body[:300]!r}")
        print(f"{name:10s} CPU µs/request: median {statistics.median(per_request):.0f}, "
              f"min {min(per_request):.0f} ({', '.join(f'{p:.0f}' for p in per_request)})", flush=True)

    users = seed.users_ensure(count=256)
    if "baseline" in which:
        measure("baseline", lambda i: environ("GET", scenarios.BASELINE_PATH))
    if "me" in which:
        access = [a for a, _ in seed.sessions_start(users=users, count=64)]
        measure("me", lambda i: environ("GET", scenarios.ME_PATH, {"Authorization": "Bearer " + access[i % 64]}))
    if "refresh" in which:
        for _ in range(rounds):
            tokens = [r for _, r in seed.sessions_start(users=users, count=max(1, count // 4))]
            started, done = time.process_time(), 0
            for _ in range(4):
                for j, token in enumerate(tokens):
                    status, body = call(environ("POST", scenarios.REFRESH_PATH,
                                                body=json.dumps({"refresh": token}).encode()))
                    if not status.startswith("200"):
                        raise SystemExit(f"refresh: {status} {body[:300]!r}")
                    tokens[j] = json.loads(body)["refresh"]
                    done += 1
            print(f"refresh    CPU µs/request: {(time.process_time() - started) * 1e6 / done:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
