"""The paper's comparison at small scale: SFT only vs SFT warm-up then SRL vs SRL then RLVR.

    python bench/learning.py --seeds 0 1 2 --steps 6 --test-tasks 8

Every arm starts from the same checkpoint (the demo's: the shipped one, else a fresh tiny model),
trains on the bundled suite's train split (the demo's suite, data and agent config) and is
evaluated on the same held-out tasks: resolve rate (agent loop in local sandboxes + harness) and
mean step similarity (greedy action vs expert, SRL reward) on held-out step instances.

Equal training compute: every arm makes 2 x `--steps` optimizer updates on 8 sequences each
(SFT: batch 8; SRL: 2 prompts x 4 rollouts; RLVR: 2 tasks x 4 episodes (their turns), the
rollout and grading cost not counted), split half and half between its two stages.
RLVR is `swesrl.training.rlvr` (agent episodes in sandboxes, reward = harness `resolved`).
Prints mean and std over seeds and writes bench/results/learning.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from swesrl.config import load_config  # noqa: E402
from swesrl.demo import DemoConfig, prepare, sft_config, srl_or_skip  # noqa: E402
from swesrl.training.evaluate import evaluate_policy  # noqa: E402
from swesrl.training.sft import train_sft  # noqa: E402
from swesrl.training.tiny import starting_model  # noqa: E402
from swesrl.utils import atomic_write_json, iter_jsonl, setup_logging  # noqa: E402

log = logging.getLogger("bench.learning")
ARMS = ("sft_only", "sft_then_srl", "srl_then_rlvr")


def rlvr(demo, base: Path, out_dir: Path, steps: int, seed: int) -> dict:
    """The trainer's RLVR (agent episodes in sandboxes, reward = harness `resolved`) on the train tasks."""
    from swesrl.training.rlvr import RLVRConfig, train_rlvr

    train, _ = demo.split()
    cfg = RLVRConfig.model_validate(
        {
            "model": {"path": str(base), "dtype": "float32"},
            "data": {
                "instances": str(demo.suite_dir / "instances.jsonl"),
                "ids": [i["instance_id"] for i in train],
            },
            "agent": [demo.cfg.agent, "step_limit=6"],
            "reward": {"grade_timeout": 120},
            "rollout": {"max_concurrent_episodes": max(demo.cfg.workers, 8)},
            "dynamic_sampling": {"max_rounds": 1},
            "train": {
                "prompts_per_step": 2,
                "num_generations": 4,
                "micro_batch_size": 8,
                "learning_rate": demo.cfg.srl.learning_rate,
                "max_steps": steps,
                "max_completion_length": 128,
                "seed": seed,
            },
            "output": {"dir": str(out_dir), "save_steps": steps, "plots": False, "report_to": ["none"]},
        }
    )
    return train_rlvr(cfg)


def run_arm(demo, arm: str, seed: int, base: Path, steps: int, work: Path) -> dict:
    """One arm from `base`; `demo` is what the demo's stages 1-3 made (`swesrl.demo.prepare`)."""
    d = work / arm / f"seed{seed}"
    done = d / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    data = work / "data" / "train"

    def sft(model: Path, out: Path, n: int) -> dict:
        cfg = demo.cfg.sft.model_copy(update={"steps": n})
        return train_sft(sft_config(cfg, model, data / "sft_steps.jsonl", out, seed))

    def srl(model: Path, out: Path) -> dict:
        return srl_or_skip(demo.cfg.srl.model_copy(update={"steps": steps}), str(model), data, out, seed)

    t0 = time.monotonic()
    if arm == "sft_only":
        first = sft(base, d / "sft", 2 * steps)
        final, second = Path(first["final_model"]), {}
    elif arm == "sft_then_srl":
        first = sft(base, d / "sft", steps)
        second = srl(Path(first["final_model"]), d / "srl")
        final = Path(second["final_model"])
    else:
        first = srl(base, d / "srl")
        second = rlvr(demo, Path(first["final_model"]), d / "rlvr", steps, seed)
        final = Path(second["final_model"])
    train_s = time.monotonic() - t0
    ev = evaluate(demo, f"{arm}-{seed}", final, d / "eval")
    result = {
        "arm": arm,
        "seed": seed,
        "train_seconds": round(train_s, 1),
        "eval": ev,
        "stages": [
            {k: v for k, v in s.items() if k in ("global_step", "last_loss", "steps_with_signal")}
            for s in (first, second)
            if s
        ],
    }
    atomic_write_json(done, result)
    return result


def evaluate(demo, name: str, model: Path, folder: Path) -> dict:
    return evaluate_policy(
        name, model, demo.test, demo.test_rows, demo.agent, folder, demo.mirror, demo.cfg.workers
    )


def mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=6, help="Updates per stage (each arm makes 2x this).")
    ap.add_argument("--train-tasks", type=int, default=68)
    ap.add_argument("--test-tasks", type=int, default=8)
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    ap.add_argument("--work", default="runs/bench_learning")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "learning.json"))
    args = ap.parse_args()
    setup_logging()
    from swesrl.utils import choose_omp_wait_policy

    choose_omp_wait_policy()  # before torch loads
    work = Path(args.work)
    cfg = load_config(DemoConfig, ["demo.yaml"])
    cfg.suite.train_tasks, cfg.suite.test_tasks = args.train_tasks, args.test_tasks
    cfg.sft.batch_size, cfg.srl.prompts_per_step, cfg.srl.num_generations = 8, 2, 4
    demo = prepare(work, cfg)  # the demo's stages 1-3: suite, expert trajectories, step data
    demo.split = lambda: (demo.train, demo.test)  # what rlvr() reads
    texts = (
        json.dumps({"messages": r["prompt"] + r["completion"]})
        for r in iter_jsonl(work / "data" / "train" / "sft_steps.jsonl")
    )
    model = demo.pipe.stage(
        "model", lambda: starting_model(work / "model" / "base", cfg.model.checkpoint, texts)
    )
    base_eval = demo.pipe.stage(
        "eval_base", lambda: evaluate(demo, "base", Path(model["path"]), work / "eval" / "base")
    )
    results = [
        run_arm(demo, arm, seed, Path(model["path"]), args.steps, work)
        for seed in args.seeds
        for arm in args.arms
    ]
    table = {}
    for arm in args.arms:
        rs = [r for r in results if r["arm"] == arm]
        row = {}
        for key in ("resolve_rate", "step_similarity", "exact_actions"):
            for g in ("all", "heldout_repo", "heldout_family"):
                m, s = mean_std([r["eval"][g][key] for r in rs])
                row[f"{key}/{g}"] = {"mean": round(m, 4), "std": round(s, 4)}
        row["rlvr_mean_reward"] = [
            (r["stages"][-1].get("reward") if arm == "srl_then_rlvr" else None) for r in rs
        ]
        row["train_seconds"] = round(statistics.fmean(r["train_seconds"] for r in rs), 1)
        table[arm] = row
    out = {
        "seeds": args.seeds,
        "steps_per_stage": args.steps,
        "test_tasks": args.test_tasks,
        "start": {"model": model, "eval": base_eval},
        "table": table,
        "runs": results,
    }
    atomic_write_json(args.out, out)
    cols = (
        "resolve_rate/all",
        "resolve_rate/heldout_repo",
        "resolve_rate/heldout_family",
        "step_similarity/all",
        "exact_actions/all",
    )
    print(
        f"start: resolve {base_eval['all']['resolve_rate']:.3f}, step similarity "
        f"{base_eval['all']['step_similarity']:.3f} ({len(args.seeds)} seeds, {args.test_tasks} held-out tasks)"
    )
    print("| arm | " + " | ".join(cols) + " | train s |")
    print("|---" * (len(cols) + 2) + "|")
    for arm, row in table.items():
        cells = [f"{row[c]['mean']:.3f} ± {row[c]['std']:.3f}" for c in cols]
        print(f"| {arm} | " + " | ".join(cells) + f" | {row['train_seconds']} |")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
