"""Benchmark `swesrl data build` at the paper's scale: 5,000 trajectories of ~27 steps (~134k instances).

    python bench/data.py [--trajectories 5000] [--out bench/results/data.json]

Synthetic SWE-smith-format trajectories (XML calls, "OBSERVATION:" turns, realistic sizes) are
written to a JSONL file first (not timed); the build then runs in a fresh child process so its
peak RSS (resource.getrusage ru_maxrss) is the build's alone. A second, 5x smaller run shows
whether memory grows with the input (streaming: it should not, beyond a few integers per row).
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = [
    "the",
    "a",
    "of",
    "to",
    "in",
    "is",
    "for",
    "on",
    "with",
    "that",
    "this",
    "def",
    "return",
    "self",
    "value",
    "items",
    "index",
    "error",
    "test",
    "file",
    "line",
    "import",
    "class",
    "none",
    "true",
    "false",
    "raise",
    "assert",
    "path",
    "data",
    "result",
    "config",
    "parse",
    "token",
    "list",
    "dict",
    "str",
    "int",
]


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def lines(rng: random.Random, n: int) -> str:
    return "\n".join(f"{i:6d}\t    {words(rng, rng.randint(3, 12))}" for i in range(1, n + 1))


def synthetic_trajectory(rng: random.Random, i: int) -> dict:
    n_steps = max(5, min(60, int(rng.gauss(27, 7))))
    task = f"Bug {i}: " + "\n".join(words(rng, 14) for _ in range(rng.randint(10, 40)))
    messages = [
        {
            "role": "system",
            "content": "You are a helpful assistant that can interact with a computer to solve tasks.",
        },
        {
            "role": "user",
            "content": f"<uploaded_files>\n/testbed\n</uploaded_files>\n<pr_description>\n{task}\n</pr_description>",
        },
    ]
    for k in range(n_steps):
        thought = words(rng, rng.randint(8, 60))
        r = rng.random()
        if k == n_steps - 1:
            call, obs = "<function=submit>\n</function>", None
        elif r < 0.45:
            cmd = f"grep -rn '{rng.choice(WORDS)}' /testbed/src/pkg{i % 50}/ | head -{rng.randint(5, 40)}"
            call = f"<function=bash>\n<parameter=command>{cmd}</parameter>\n</function>"
            obs = lines(rng, rng.randint(0, 30))
        elif r < 0.8:
            call = (
                "<function=str_replace_editor>\n<parameter=command>view</parameter>\n"
                f"<parameter=path>/testbed/src/pkg{i % 50}/mod{k}.py</parameter>\n</function>"
            )
            obs = lines(rng, rng.randint(10, 120))
        else:
            call = (
                "<function=str_replace_editor>\n<parameter=command>str_replace</parameter>\n"
                f"<parameter=path>/testbed/src/pkg{i % 50}/mod{k}.py</parameter>\n"
                f"<parameter=old_str>{lines(rng, 3)}</parameter>\n<parameter=new_str>{lines(rng, 4)}</parameter>\n</function>"
            )
            obs = "The file has been edited.\n" + lines(rng, 8)
        messages.append({"role": "assistant", "content": f"{thought}\n\n{call}"})
        if obs is not None:
            messages.append(
                {
                    "role": "user",
                    "content": f"OBSERVATION:\n{obs}"
                    if obs
                    else "Your command ran successfully and did not produce any output.",
                }
            )
    return {"instance_id": f"synthetic__repo-{i}", "messages": messages}


def write_input(path: Path, n: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    steps = 0
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            t = synthetic_trajectory(rng, i)
            steps += sum(m["role"] == "assistant" for m in t["messages"])
            f.write(json.dumps(t) + "\n")
    return steps


def child(inp: str, out: str, workers: str) -> None:
    """Runs in a fresh interpreter: the build alone, then prints its time and peak RSS as JSON."""
    from swesrl.training.data import BuildOptions, build_dataset

    t0 = time.perf_counter()
    stats = build_dataset([inp], out, BuildOptions(), workers=int(workers))
    wall = time.perf_counter() - t0
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    rss_mb = me.ru_maxrss / 1024
    child_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    sizes = {p.name: p.stat().st_size for p in Path(out).iterdir()}
    print(
        json.dumps(
            {
                "wall_s": wall,
                "cpu_s": cpu_s,
                "peak_rss_mb": rss_mb,
                "worker_peak_rss_mb": child_rss_mb,
                "instances": stats["instances"],
                "trajectories": stats["trajectories_used"],
                "bytes": sizes,
            }
        )
    )


def run_build(inp: Path, out: Path, workers: int) -> dict:
    """Peak RSS is the main process's (workers' own peaks are reported by RUSAGE_CHILDREN there)."""
    cmd = [sys.executable, __file__, "--child", str(inp), str(out), str(workers)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trajectories", type=int, default=5000)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "data.json"))
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the parallel run")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="swesrl-bench-data-") as tmp:
        small = max(args.trajectories // 5, 1)
        plan = [(small, 1), (args.trajectories, 1)] + (
            [(args.trajectories, args.workers)] if args.workers > 1 else []
        )
        inputs: dict[int, tuple[Path, int, float]] = {}
        for n, workers in plan:
            if n not in inputs:
                inp = Path(tmp) / f"traj{n}.jsonl"
                t0 = time.perf_counter()
                inputs[n] = (inp, write_input(inp, n), time.perf_counter() - t0)
            inp, n_steps, gen_s = inputs[n]
            out = Path(tmp) / f"out{n}-{workers}"
            res = run_build(inp, out, workers)
            rows.append(
                {
                    "trajectories": n,
                    "workers": workers,
                    "steps": n_steps,
                    "input_mb": round(inp.stat().st_size / 2**20, 1),
                    "generate_s": round(gen_s, 1),
                    **res,
                }
            )
            for p in out.glob("*.jsonl"):
                p.unlink()
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "target": {"trajectories": 5000, "wall_s_max": 120},
        "runs": rows,
    }
    print(
        f"{'trajectories':>12} {'workers':>7} {'steps':>8} {'instances':>9} {'input MB':>8} {'srl.jsonl MB':>12} "
        f"{'build s':>8} {'CPU s':>7} {'inst/s':>8} {'inst/CPU s':>10} {'peak RSS MB':>11} {'worker RSS MB':>13}"
    )
    for r in rows:
        print(
            f"{r['trajectories']:>12} {r['workers']:>7} {r['steps']:>8} {r['instances']:>9} {r['input_mb']:>8} "
            f"{r['bytes']['srl.jsonl'] / 2**20:>12.0f} {r['wall_s']:>8.1f} {r['cpu_s']:>7.1f} {r['instances'] / r['wall_s']:>8.0f} {r['instances'] / r['cpu_s']:>10.0f} {r['peak_rss_mb']:>11.0f} {r['worker_peak_rss_mb']:>13.0f}"
        )
    print(
        f"load average before/after: {result['machine']['loadavg_before']} / {result['machine']['loadavg_after']} on {os.cpu_count()} CPUs"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
