"""The production stack the benchmarks run: environment, database, gunicorn, Celery.

Everything runs as DJANGO_ENV=production with secrets generated for the run, on
PostgreSQL (its own database) and Redis (its own db numbers). The server side
(gunicorn, Celery worker and beat) is pinned to one set of cores and the load
generator side (wrk, this harness, the fake Schwab server) to another.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CLEARED = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "EMAIL_URL",
           "CELERY_TASK_ALWAYS_EAGER")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_split() -> tuple[str | None, str | None]:
    """(server cores, generator cores): the first half for the server, the rest for load."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    if len(cores) < 2 or not shutil.which("taskset"):
        return None, None
    half = len(cores) // 2
    return ",".join(map(str, cores[:half])), ",".join(map(str, cores[half:]))


def ensure_tools(log, servers: list[str] | tuple[str, ...] = ("gunicorn",)) -> None:
    """wrk from the distribution, gunicorn from requirements/prod.txt and granian (when asked for)
    at its pin in requirements/dev.txt, installed when missing."""
    if not shutil.which("wrk"):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise SystemExit("wrk is not installed: install it (Debian: apt-get install -y wrk)")
        log("installing wrk (apt-get)")
        subprocess.run(["apt-get", "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if not (VENV_BIN / "gunicorn").exists():
        log("installing requirements/prod.txt (gunicorn)")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-r",
                        str(ROOT / "requirements" / "prod.txt")], check=True)
    if "granian" in servers and not (VENV_BIN / "granian").exists():
        pin = next(line.split()[0] for line in (ROOT / "requirements" / "dev.txt").read_text().splitlines()
                   if line.startswith("granian=="))
        log(f"installing {pin}")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", pin], check=True)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def ensure_database(database_url: str, log, *, fresh: bool = False) -> None:
    """Create the bench database when it does not exist; with ``fresh``, drop it first.

    Only ever the bench's own database (its name must start with ``dashtam_bench``).
    """
    import psycopg

    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(with_database(database_url, "postgres"), autocommit=True, connect_timeout=5) as conn:
        if fresh:
            if not name.startswith("dashtam_bench"):
                raise SystemExit(f"--fresh drops only a dashtam_bench* database, not {name!r}")
            log(f"dropping database {name}")
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            log(f"creating database {name}")
            conn.execute(f'CREATE DATABASE "{name}"')


def flush_redis(url: str) -> None:
    """FLUSHDB on the bench's own Redis db numbers only."""
    import redis

    redis.Redis.from_url(url).flushdb()


SECRETS_FILE = ROOT / "var" / "bench" / "secrets.json"


def _run_secrets() -> dict:
    """The secrets every bench run uses, generated once and kept in var/bench (mode 0600).

    Kept, because the bench database is: audit rows are hashed and tokens encrypted
    with them, and rows a run left unsealed must still verify when the next run seals
    them (with new keys each run, every such row read as tampered with).
    """
    import json

    if SECRETS_FILE.exists():
        return json.loads(SECRETS_FILE.read_text())
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    made = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        "FIELD_ENCRYPTION_KEYS": f"bench1:{key}",
    }
    SECRETS_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(SECRETS_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(made, fh)
    return made


@dataclass
class BenchConfig:
    database_url: str
    redis_url: str
    broker_url: str
    smtp_port: int
    server_cpus: str | None
    load_cpus: str | None
    log_dir: Path
    gunicorn_args: list[str]
    secrets: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.secrets:
            self.secrets = _run_secrets()

    def env(self, **overrides: str) -> dict[str, str]:
        """The production environment every process of the run gets (plus overrides)."""
        env = {k: v for k, v in os.environ.items() if k not in CLEARED}
        env.update(self.secrets)
        env.update({
            "DJANGO_ENV": "production",
            "DJANGO_SETTINGS_MODULE": "dashtam.settings",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "CELERY_BROKER_URL": self.broker_url,
            "EMAIL_URL": f"smtp://127.0.0.1:{self.smtp_port}",
            "DEFAULT_FROM_EMAIL": "Dashtam <no-reply@bench.invalid>",
            "FRONTEND_URL": "https://app.bench.invalid",
            "BENCH_ENDPOINTS": "true",
            # The limiter counts every request as in production, but the bench's
            # thousands of requests a second from one address must not be refused.
            "RATE_LIMIT_API": "100000000/m",
            "RATE_LIMIT_LOGIN": "100000000/m",
            "RATE_LIMIT_REFRESH": "100000000/m",
            "LOCKOUT_IP_FAILURE_LIMIT": "100000000",
            # audit_admin times the admin's pages, not its sign-in: its staff user enters with a
            # password alone (production asks staff for a second factor).
            "ADMIN_REQUIRE_MFA": "false",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(overrides)
        return env

    def manage(self, *args: str, **overrides: str) -> str:
        out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env(**overrides),
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stderr[-4000:]}{out.stdout[-2000:]}")
        return out.stdout


def _pin(cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus] if cpus else []


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    found = []
    for child in map(int, text.split()):
        found.append(child)
        found.extend(children(child))
    return found


def peak_rss_mb(pids: list[int]) -> dict[int, float]:
    """VmHWM (peak resident set) of each process, in MiB."""
    peaks = {}
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = int(line.split()[1]) / 1024
        except OSError:
            continue
    return peaks


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (their threads included)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


class Process:
    """A child process in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict, log_path: Path, cwd: Path = ROOT):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def workers(self) -> list[int]:
        """The processes that serve: the children, or the process itself when it has none."""
        return children(self.pid) or [self.pid]

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        self._log.close()


SERVERS = ("gunicorn", "granian")


def option_value(args: list[str], name: str, default: str) -> str:
    """The value of ``--name N`` (or ``--name=N``) in an argument list."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def with_option(args: list[str], name: str, value: str) -> list[str]:
    """The argument list with ``--name`` set to ``value`` (replaced, or added)."""
    out, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == name and i + 1 < len(args):
            skip = True
            continue
        if arg.startswith(name + "="):
            continue
        out.append(arg)
    return [*out, name, value]


def server_argv(kind: str, app: str, port: int, gunicorn_args: list[str], *, workers: int | None = None,
                cwd: Path = ROOT) -> list[str]:
    """The command line of one application server: gunicorn (gthread) or granian (WSGI).

    granian gets what gunicorn's arguments say: as many worker processes, and as many
    threads running the application (``--blocking-threads``) as gthread's ``--threads``;
    HTTP/1 with keep-alive, no websockets, no access log (gunicorn logs none either).
    """
    if workers is not None:
        gunicorn_args = with_option(gunicorn_args, "--workers", str(workers))
    if kind == "gunicorn":
        return [str(VENV_BIN / "gunicorn"), app, "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
                "--graceful-timeout", "5", *gunicorn_args]
    if kind == "granian":
        return [str(VENV_BIN / "granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", option_value(gunicorn_args, "--workers", "1"),
                "--blocking-threads", option_value(gunicorn_args, "--threads", "8"),
                "--runtime-threads", "1", "--http", "1", "--no-ws", "--log-level", "warning",
                "--working-dir", str(cwd), app]
    raise ValueError(f"unknown server {kind!r}: one of {', '.join(SERVERS)}")


class Server(Process):
    """An application server on the server cores (or ``cpus``), answering on a fresh port.

    Ours by default (``dashtam.wsgi``, the bench's production environment); the peer
    passes its own ``app``, ``cwd`` and ``env``.
    """

    def __init__(self, config: BenchConfig, label: str, *, kind: str = "gunicorn", app: str = "dashtam.wsgi:application",
                 cwd: Path = ROOT, env: dict | None = None, cpus: str | None = None, workers: int | None = None,
                 **overrides: str):
        self.port = free_port()
        self.kind = kind
        self.base_url = f"http://127.0.0.1:{self.port}"
        argv = _pin(cpus or config.server_cpus) + server_argv(kind, app, self.port, config.gunicorn_args,
                                                              workers=workers, cwd=cwd)
        super().__init__(f"{kind}-{label}", argv, env if env is not None else config.env(**overrides),
                         config.log_dir / f"{kind}-{label}.log", cwd=cwd)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.kind} exited; see {self.log_path.name}:\n"
                                   + self.log_path.read_text(errors="replace")[-3000:])
            try:
                response = requests.get(self.base_url + "/healthz", headers={"X-Forwarded-Proto": "https"},
                                        timeout=1)
                if response.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.kind} did not become ready in time")


def celery(config: BenchConfig, role: str, *extra: str, **overrides: str) -> Process:
    """``celery -A dashtam worker|beat`` on the server cores."""
    argv = _pin(config.server_cpus) + [str(VENV_BIN / "celery"), "-A", "dashtam", role,
                                       "--loglevel", "WARNING", *extra]
    return Process(f"celery-{role}", argv, config.env(**overrides), config.log_dir / f"celery-{role}.log")


class SmtpSink:
    """Accepts and drops the mail the stack sends (production refuses a console backend)."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.received = 0

        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
                sink.received += 1
                return "250 OK"

        self.port = free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self):
        self._controller.stop()
