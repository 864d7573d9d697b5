"""Sampling profiles of the server's workers under load (py-spy), summarised as text.

``bench/run.py --profile`` records each HTTP scenario's workers during one extra
run and writes the collapsed stacks next to the results, plus a summary of where
the time went: the inclusive share of the functions in our code and of the
libraries underneath.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

OURS = ("dashtam", "accounts", "sessions_mgmt", "audit", "providers")
FILE = re.compile(r"\(([^():]+):\d+\)$")


def area(frame: str) -> tuple[bool, str]:
    """(ours, area) of one collapsed-stack frame: our module, or a library (django/db, psycopg...)."""
    match = FILE.search(frame)
    path = match.group(1) if match else ""
    parts = [p for p in path.split("/") if p]
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    if not parts:
        return False, "?"
    if parts[0] in OURS:
        return True, "/".join(parts)
    if parts[0] in ("django", "rest_framework") and len(parts) > 2:
        return False, "/".join(parts[:2])
    return False, parts[0] if len(parts) > 1 else "stdlib"


def py_spy() -> str | None:
    exe = Path(sys.executable).parent / "py-spy"
    return str(exe) if exe.exists() else shutil.which("py-spy")


def start(pids: list[int], seconds: int, out_dir: Path, label: str) -> list[tuple[subprocess.Popen, Path]]:
    """One py-spy per worker, recording collapsed stacks for ``seconds``."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    out_dir.mkdir(parents=True, exist_ok=True)
    running = []
    for pid in pids:
        path = out_dir / f"{label}-{pid}.folded"
        proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "200",
                                 "--format", "raw", "--output", str(path), "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        running.append((proc, path))
    return running


def finish(running: list[tuple[subprocess.Popen, Path]], timeout: float = 60) -> list[Path]:
    paths = []
    for proc, path in running:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
        if path.exists():
            paths.append(path)
    return paths


def summarize(paths: list[Path], top: int = 25) -> dict:
    """Inclusive sample share of our functions and of each library, busiest first."""
    ours: Counter[str] = Counter()
    libs: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            if any("select" in f and "gthread" in f for f in frames[-3:]) or "wait (threading.py" in frames[-1]:
                continue  # idle worker threads waiting for a connection
            total += n
            seen_ours, seen_libs = set(), set()
            for frame in frames:
                mine, where = area(frame)
                if mine:
                    seen_ours.add(f"{frame.split(' (')[0]} ({where})")
                else:
                    seen_libs.add(where)
            for key in seen_ours:
                ours[key] += n
            for key in seen_libs:
                libs[key] += n
            leaves[area(frames[-1])[1]] += n

    def share(counter: Counter) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(top)] if total else []

    # "libraries" is inclusive (time under any frame of it); "self" is where the CPU
    # actually was (the innermost frame's module or library).
    return {"samples": total, "ours": share(ours), "libraries": share(libs), "self": share(leaves)}
