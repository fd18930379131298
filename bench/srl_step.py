"""SRL step time: swe-srl's trainer against stock TRL GRPOTrainer, same tiny model, data and budget.

Each arm runs in its own process (OpenMP reads OMP_WAIT_POLICY when torch loads), arms interleaved
and repeated, dynamic sampling off (stock TRL has none). Prints a table; writes
bench/results/srl_step.json.

    python bench/srl_step.py [--steps 6] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CMDS = ["ls", "ls -la", "cat setup.py", "git status", "grep -rn foo src", "python3 -m pytest -q"]
ARMS = [
    ("stock TRL", "stock", None),
    ("swe-srl", "swesrl", None),
    ("swe-srl, OMP PASSIVE", "swesrl", "PASSIVE"),
]


def write_data(path: Path) -> None:
    rows = []
    for i in range(64):
        c = CMDS[i % len(CMDS)]
        act = f"<function=bash>\n<parameter=command>{c}</parameter>\n</function>"
        prompt = [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": f"Run {c}"}]
        rows.append({"instance_id": f"t{i}", "step": 0, "n_steps": 1, "prompt": prompt, "expert_action": act})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def one_arm(kind: str, steps: int, data: Path, out: Path) -> dict:
    """In this process: `steps` + 1 GRPO steps; the first is warm-up. Returns seconds per step."""
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from swesrl.training.srl import (
        grpo_args,
        load_policy,
        load_srl_config,
        load_srl_dataset,
        make_reward_func,
        make_trainer_class,
    )

    ckpt = ROOT / "swesrl" / "checkpoints" / "tiny-demo"
    cfg = load_srl_config(
        "srl_tiny.yaml",
        [f"model.path={ckpt}", f"data.path={data}", f"output.dir={out}", f"train.max_steps={steps + 1}",
         "train.prompts_per_step=4", "train.num_generations=4", "train.max_completion_length=64",
         "train.micro_batch_size=16", "dynamic_sampling.enabled=false", "output.report_to=[none]",
         "output.save_steps=1000", "output.plots=false", "output.resume=false"],
    )  # fmt: skip
    model, tok = load_policy(cfg.model)
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t)

    kw = dict(model=model, reward_funcs=[make_reward_func(cfg.reward)], args=grpo_args(cfg),
              train_dataset=load_srl_dataset(data), processing_class=tok, callbacks=[Clock()])  # fmt: skip
    trainer = (
        GRPOTrainer(**kw)
        if kind == "stock"
        else make_trainer_class()(**kw, dynamic_sampling=cfg.dynamic_sampling)
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "completions/mean_length" in h][1:]
    return {
        "s_per_step": statistics.mean(times[1:]),
        "steps": len(times) - 1,
        "completion_tokens_mean": statistics.mean(float(h["completions/mean_length"]) for h in logs),
        "tokens_per_s": statistics.mean(float(h.get("tokens_per_second", "nan")) for h in logs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--arm", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "srl_step.json"))
    args = ap.parse_args()
    if args.arm:  # child process
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(one_arm(args.arm, args.steps, Path(args.data), Path(tmp) / "run")))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console()
    rows = []
    with tempfile.TemporaryDirectory(prefix="swesrl-bench-srl-step-") as tmp:
        data = Path(tmp) / "srl.jsonl"
        write_data(data)
        for rep in range(args.repeats):
            for label, kind, omp in ARMS:
                env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
                if omp:
                    env["OMP_WAIT_POLICY"] = omp
                load = os.getloadavg()[0]
                cmd = [
                    sys.executable,
                    __file__,
                    "--arm",
                    kind,
                    "--steps",
                    str(args.steps),
                    "--data",
                    str(data),
                ]
                res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                r = json.loads(res.stdout.strip().splitlines()[-1])
                rows.append({"arm": label, "repeat": rep, "omp_wait_policy": omp or "default", **r,
                             "load_avg_before": round(load, 2)})  # fmt: skip
                console.print(rows[-1])
    by = {label: statistics.mean(r["s_per_step"] for r in rows if r["arm"] == label) for label, _, _ in ARMS}
    # paired ratios: each arm against stock TRL of the same repeat (adjacent in time, so under the
    # same load); the median of those is the figure, their range the spread
    stock = {r["repeat"]: r["s_per_step"] for r in rows if r["arm"] == "stock TRL"}
    ratios = {
        label: [r["s_per_step"] / stock[r["repeat"]] for r in rows if r["arm"] == label]
        for label, _, _ in ARMS
    }
    table = Table(
        title=f"SRL step on the tiny checkpoint ({args.steps} steps x {args.repeats}, G=4, 4 prompts, 64 tokens)"
    )
    for col in ("arm", "mean s / step", "min s / step", "vs stock TRL (median of paired)", "paired range"):
        table.add_column(col, justify="right")
    for label, v in by.items():
        best = min(r["s_per_step"] for r in rows if r["arm"] == label)
        rs = ratios[label]
        table.add_row(label, f"{v:.3f}", f"{best:.3f}", f"{statistics.median(rs):.3f}x",
                      f"{min(rs):.3f}-{max(rs):.3f}")  # fmt: skip
    console.print(table)
    meta = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version()}  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "meta": meta,
                "mean_s_per_step": by,
                "paired_ratio_median": {k: statistics.median(v) for k, v in ratios.items()},
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
