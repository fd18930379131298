"""Harness throughput: instances evaluated per minute on bundled tasks (gold patches), 1 and 2
workers, local and docker backends. Prints a rich table; writes bench/results/harness.json.

    python bench/harness.py [--n 20] [--backends local,docker] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def docker_ok() -> bool:
    try:
        import docker

        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="bundled tasks to evaluate")
    ap.add_argument("--backends", default="local,docker")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "harness.json"))
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from swesrl.core.instances import load_instances
    from swesrl.harness import evaluate
    from swesrl.harness.predictions import gold_predictions
    from swesrl.tasks import build_suite

    console = Console()
    rows = []
    with tempfile.TemporaryDirectory(prefix="swesrl-bench-harness-") as tmp:
        path = build_suite(Path(tmp) / "suite", n=args.n, seed=0)
        insts = load_instances(path)
        preds = gold_predictions(insts)
        import swebench.harness.grading  # noqa: F401 - import cost (~4 s) outside the timings

        for backend in args.backends.split(","):
            if backend == "docker" and not docker_ok():
                console.print("[yellow]docker: no daemon reachable; skipped[/]")
                continue
            for w in (int(x) for x in args.workers.split(",")):
                load0 = os.getloadavg()[0]
                t0 = time.perf_counter()
                s = evaluate(insts, preds, Path(tmp) / "runs", f"{backend}-w{w}", backend=backend, workers=w,
                             timeout=args.timeout, mirror=path.parent / "repos")  # fmt: skip
                dt = time.perf_counter() - t0
                rows.append(
                    {
                        "backend": backend,
                        "workers": w,
                        "instances": len(insts),
                        "resolved": s["resolved_instances"],
                        "errors": s["error_instances"],
                        "seconds": round(dt, 2),
                        "instances_per_min": round(len(insts) / dt * 60, 2),
                        "load_avg_before": round(load0, 2),
                        "load_avg_after": round(os.getloadavg()[0], 2),
                    }
                )
                console.print(rows[-1])
    table = Table(title=f"swesrl eval throughput ({args.n} bundled tasks, gold patches)")
    for col in ("backend", "workers", "instances", "resolved", "errors", "seconds", "inst/min", "load avg"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["backend"], str(r["workers"]), str(r["instances"]), str(r["resolved"]), str(r["errors"]), f"{r['seconds']:.1f}",
            f"{r['instances_per_min']:.1f}", f"{r['load_avg_before']:.1f}",
        )  # fmt: skip
    console.print(table)
    if any(r["errors"] for r in rows):
        console.print("[red]some instances ended in error: results not written[/]")
        raise SystemExit(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
