"""Sandbox latency: a trivial command, a str_replace_editor edit, diff() and reset(), per backend.

    python bench/sandbox.py [--n 30] [--backends local,docker]

Prints a table (median / p95 in ms, with the targets) and writes bench/results/sandbox.json.
Targets on a 2-core machine: local command median <= 15 ms, docker command median <= 100 ms,
reset <= 0.5 s. The repository is a small real git repo made in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from swesrl.core.actions import Action
from swesrl.envs import SandboxConfig, make_env
from swesrl.envs.tools import execute_action
from swesrl.utils import atomic_write_json

TARGETS_MS = {
    ("local", "command"): 15,
    ("docker", "command"): 100,
    ("local", "reset"): 500,
    ("docker", "reset"): 500,
}
OUT = Path(__file__).parent / "results" / "sandbox.json"


def make_repo(root: Path) -> tuple[Path, str]:
    repo = root / "repo"
    (repo / "pkg").mkdir(parents=True)
    for i in range(50):  # a few dozen files so diff/reset have something to scan
        (repo / "pkg" / f"m{i}.py").write_text(
            "".join(f"def f{j}(x):\n    return x + {j}\n\n" for j in range(40))
        )
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b"}  # fmt: skip
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    base = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
    return repo, base.stdout.strip()


def timed(fn, n: int, before=None) -> list[float]:
    out = []
    for _ in range(n):
        if before:
            before()
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def bench_backend(backend: str, repo: Path, base: str, n: int) -> dict[str, list[float]]:
    t = time.perf_counter()
    env = make_env(repo, base, SandboxConfig(backend=backend))
    start_ms = (time.perf_counter() - t) * 1000
    try:
        env.execute("true")  # warm up (starts the runner)
        res = {"start": [start_ms]}
        res["command"] = timed(lambda: env.execute("true"), n)
        if backend == "docker":  # the fallback for images without python3: one `docker exec` per command
            res["command (exec per call)"] = timed(lambda: env._exec_direct("true", 30, 64_000), n)
        state = {"flip": False}

        def edit():
            old, new = ("return x + 1\n", "return x - 1\n")
            if state["flip"]:
                old, new = new, old
            state["flip"] = not state["flip"]
            obs = execute_action(
                env, Action("str_replace_editor", {"command": "str_replace", "path": "/testbed/pkg/m7.py",
                                                   "old_str": f"f1(x):\n    {old}", "new_str": f"f1(x):\n    {new}"})
            )  # fmt: skip
            assert obs.returncode == 0, obs.output

        res["edit"] = timed(edit, n)
        env.execute("echo 'X = 1' > pkg/new.py")
        res["diff"] = timed(env.diff, n)
        res["reset"] = timed(env.reset, n, before=lambda: env.execute("echo 1 >> pkg/m3.py; touch junk.txt"))
        return res
    finally:
        env.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30, help="repetitions per measurement")
    ap.add_argument("--backends", default="local,docker", help="comma-separated backends")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    console = Console()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        repo, base = make_repo(Path(tmp))
        for backend in args.backends.split(","):
            console.print(f"[bold]{backend}[/]: {args.n} runs each ...")
            try:
                raw = bench_backend(backend, repo, base, args.n)
            except Exception as e:  # e.g. no Docker daemon: report it, keep the other backend
                console.print(f"[red]{backend} skipped:[/] {e}")
                results[backend] = {"error": str(e)}
                continue
            results[backend] = {
                k: {"median_ms": round(statistics.median(v), 2), "p95_ms": round(p95(v), 2), "n": len(v)}
                for k, v in raw.items()
            }
    table = Table(title="Sandbox latency (ms)")
    for col in ("backend", "operation", "median", "p95", "target (median)", "ok"):
        table.add_column(col, justify="right" if col not in ("backend", "operation") else "left")
    for backend, ops in results.items():
        if "error" in ops:
            table.add_row(backend, "error", "", "", "", ops["error"][:40])
            continue
        for op, r in ops.items():
            target = TARGETS_MS.get((backend, op))
            ok = "" if target is None else ("yes" if r["median_ms"] <= target else "NO")
            table.add_row(
                backend,
                op,
                f"{r['median_ms']:.1f}",
                f"{r['p95_ms']:.1f}",
                "" if target is None else f"<= {target}",
                ok,
            )
    console.print(table)
    load = os.getloadavg()
    meta = {"cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in load], "python": sys.version.split()[0],
            "platform": platform.platform(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    console.print(f"machine: {meta['cpus']} CPUs, load average {meta['loadavg']}")
    atomic_write_json(
        args.out,
        {
            "results": results,
            "targets_ms": {f"{b}.{o}": t for (b, o), t in TARGETS_MS.items()},
            "machine": meta,
        },
    )
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
