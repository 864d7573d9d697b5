"""Driving wrk: scenario scripts, pinned to the generator's core, and parsing its result line."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent / "lua"
RESULT_RE = re.compile(r"^BENCH_RESULT (.*)$", re.MULTILINE)


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: int
    non_2xx: int
    socket_errors: int
    timeouts: int
    # Filled in by the harness: CPU time the server's workers spent per good answer.
    cpu_ms_per_request: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def build_script(name: str, out_dir: Path) -> Path:
    """common.lua followed by the scenario's script, as one file for ``wrk -s``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.lua"
    path.write_text((LUA_DIR / "common.lua").read_text() + "\n" + (LUA_DIR / f"{name}.lua").read_text())
    return path


def parse_output(text: str) -> WrkResult:
    """The BENCH_RESULT line that common.lua's done() prints (latencies in microseconds)."""
    match = RESULT_RE.search(text)
    if not match:
        raise RuntimeError("wrk printed no result line:\n" + text[-2000:])
    values = {k: float(v) for k, v in (item.split("=", 1) for item in match.group(1).split())}
    duration = values["duration_us"] / 1e6
    socket_errors = int(values["connect"] + values["read"] + values["write"])
    non_2xx = int(values["status"])
    timeouts = int(values["timeout"])
    requests = int(values["requests"])
    return WrkResult(
        requests=requests,
        duration_s=round(duration, 3),
        # Throughput counts good answers only: an error is not work done.
        rps=round(max(0, requests - non_2xx) / duration, 1) if duration else 0.0,
        p50_ms=values["p50"] / 1000,
        p90_ms=values["p90"] / 1000,
        p95_ms=values["p95"] / 1000,
        p99_ms=values["p99"] / 1000,
        max_ms=values["max"] / 1000,
        mean_ms=round(values["mean"] / 1000, 3),
        errors=non_2xx + socket_errors + timeouts,
        non_2xx=non_2xx,
        socket_errors=socket_errors,
        timeouts=timeouts,
    )


def command(*, url: str, script: Path, args: list[str], threads: int, connections: int,
            duration: float, cpus: str | None, timeout_s: int = 10) -> list[str]:
    cmd = ["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []
    return cmd + [
        "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s",
        "--timeout", f"{timeout_s}s", "-s", str(script), url, "--", *args,
    ]


def run(*, url: str, script: Path, args: list[str], threads: int, connections: int,
        duration: float, cpus: str | None) -> WrkResult:
    threads = max(1, min(threads, connections))
    cmd = command(url=url, script=script, args=[args[0], str(threads), *args[1:]], threads=threads,
                  connections=connections, duration=duration, cpus=cpus)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr[-2000:]}")
    return parse_output(out.stdout)
