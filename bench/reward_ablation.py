"""SRL reward ablation: `text` vs `execution` vs `mixed` after the demo's SFT warm-up, 3 seeds.

Built on the public commands only:
1. `swesrl demo --out DEMO` (skipped when DEMO already holds a finished run): the bundled suite,
   the expert trajectories, the step data (train / held-out), the SFT warm-up checkpoint and its
   held-out evaluation (the starting point of every arm).
2. `swesrl data build --with-state` on the demo's train and held-out expert trajectories; the
   states are joined to the demo's step rows by (instance, step) (the demo relabels its recovery
   rows' targets; their states are unchanged).
3. Per seed and arm: `swesrl train srl` from the SFT checkpoint with the demo's SRL settings
   (16 GRPO steps, 4 prompts x 4 rollouts, lr 1e-4, temperature 1, dynamic sampling with 3
   rounds): the same steps, prompts and rollouts for every arm (equal compute), only
   `reward.compare` differs (`mixed`: text_weight 0.5).
4. Evaluation on all held-out tasks: `swesrl run` (greedy agent, agent_tiny.yaml) + `swesrl eval`
   (resolve rate); the greedy action on every held-out step instance against the expert's: step
   similarity (the paper's text reward, as the demo reports it), exact actions, and the execution
   reward of the same actions (exec step score).

Resumable: every arm x seed is written to WORK/results/<arm>-s<seed>.json when it finishes and
skipped on a rerun; the table and bench/results/reward_ablation.json are rewritten after each.

    nohup python bench/reward_ablation.py --work /tmp/swesrl-ablation --demo-out /tmp/demo-out \\
        > /tmp/swesrl-ablation.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "reward_ablation.json"
ARMS = ("text", "execution", "mixed")
SRL = {  # the demo's SRL stage (swesrl/config/demo.yaml, DemoSRLConfig)
    "steps": 16,
    "prompts_per_step": 4,
    "num_generations": 4,
    "learning_rate": 1e-4,
    "temperature": 1.0,
    "max_completion_length": 224,
}
METRICS = ("resolve_rate", "step_similarity", "exact_actions", "exec_step_score")


def swesrl(*args: str, log: Path) -> None:
    """One public CLI command; its output goes to `log`; a failure stops the bench with the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    with open(log, "a") as f:
        f.write(f"$ swesrl {' '.join(args)}\n")
        f.flush()
        r = subprocess.run([sys.executable, "-m", "swesrl", *args], stdout=f, stderr=subprocess.STDOUT)
        f.write(f"# exit {r.returncode} after {time.monotonic() - t:.0f}s\n")
    if r.returncode != 0:
        raise SystemExit(f"swesrl {args[0]} {args[1] if len(args) > 1 else ''} failed; see {log}:\n"
                         + "".join(log.read_text().splitlines(keepends=True)[-15:]))  # fmt: skip


def read_jsonl(p: Path) -> list[dict]:
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def write_jsonl(p: Path, rows: list[dict]) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    tmp.replace(p)


def prepare(work: Path, demo: Path) -> dict:
    """The demo run, the step data with states, the held-out instances; returns the paths."""
    logs = work / "logs"
    if not (demo / "report.json").is_file():
        swesrl("demo", "--out", str(demo), log=logs / "demo.log")
    report = json.loads((demo / "report.json").read_text())
    # a copied demo folder: its own files first, then the paths its report names
    instances = demo / "suite" / "instances.jsonl"
    if not instances.is_file():
        instances = Path(report["suite"]["instances"])
    sft = demo / "sft" / "final"
    if not (sft / "config.json").is_file():
        sft = Path(report["training"]["sft"]["final_model"])
    paths = {"instances": instances, "mirror": instances.parent / "repos", "sft": sft, "report": report}
    for split in ("train", "test"):
        joined = work / "data" / f"{split}.jsonl"
        if not joined.is_file():
            states_dir = work / "states" / split
            swesrl("data", "build", "-t", str(demo / "expert" / f"{split}.jsonl"), "-o", str(states_dir),
                   "--with-state", "--instances", str(instances), "-c", "agent_tiny.yaml",
                   log=logs / "data.log")  # fmt: skip
            states = {(r["instance_id"], r["step"]): r["state"] for r in read_jsonl(states_dir / "srl.jsonl")}
            rows = read_jsonl(demo / "data" / split / "srl.jsonl")
            missing = [r for r in rows if (r["instance_id"], r["step"]) not in states]
            if missing:
                raise SystemExit(
                    f"{len(missing)} {split} rows have no state (first: {missing[0]['instance_id']})"
                )
            write_jsonl(joined, [r | {"state": states[(r["instance_id"], r["step"])]} for r in rows])
        paths[split] = joined
    heldout = work / "heldout.jsonl"
    if not heldout.is_file():
        ids = {r["instance_id"] for r in read_jsonl(paths["test"])}
        write_jsonl(heldout, [i for i in read_jsonl(instances) if i["instance_id"] in ids])
    paths["heldout"] = heldout
    return paths


def srl_config(paths: dict, arm: str, seed: int, out_dir: Path, steps: int, workers: int) -> Path:
    import yaml

    s = SRL | {"steps": steps}
    cfg = {
        "model": {"path": str(paths["sft"]), "dtype": "float32"},
        "data": {"path": str(paths["train"])},
        "reward": {
            "compare": arm,
            "text_weight": 0.5,
            "execution": {
                "instances": str(paths["instances"]),
                "workers": workers,
            },
        },
        "dynamic_sampling": {"enabled": True, "max_rounds": 3, "on_exhausted": "fill"},
        "train": {
            "prompts_per_step": s["prompts_per_step"],
            "num_generations": s["num_generations"],
            "micro_batch_size": s["prompts_per_step"] * s["num_generations"],
            "learning_rate": s["learning_rate"],
            "max_steps": s["steps"],
            "temperature": s["temperature"],
            "max_completion_length": s["max_completion_length"],
            "seed": seed,
        },
        "output": {
            "dir": str(out_dir),
            "save_steps": max(1, s["steps"] // 2),
            "save_total_limit": 1,
            "logging_steps": 1,
            "report_to": ["none"],
            "plots": False,
        },  # fmt: skip
    }
    path = out_dir.parent / "srl.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def step_scores(model_dir: Path, paths: dict, workers: int) -> dict:
    """Greedy actions on the held-out step instances: text similarity (the demo's measure), exact
    actions, and the execution reward of the same actions."""
    from swesrl.agent.loop import load_agent_config
    from swesrl.agent.models import HFModel
    from swesrl.training.exec_reward import ExecutionConfig, ExecutionScorer
    from swesrl.training.rewards import FORMAT_FAILURE, srl_reward

    rows = read_jsonl(paths["test"])
    config = load_agent_config(["agent_tiny.yaml"])
    model = HFModel(
        str(model_dir), device="cpu", max_new_tokens=int(config.sampling.get("max_new_tokens", 224))
    )
    completions: list[str] = []
    for i in range(0, len(rows), 32):
        outs = model.generate_batch([r["prompt"] for r in rows[i : i + 32]], 1, **dict(config.sampling))
        completions += [o[0] for o in outs]
    experts = [r["expert_action"] for r in rows]
    text = srl_reward(completions, experts)
    n_tasks = len({r["instance_id"] for r in rows})
    cfg = ExecutionConfig(instances=str(paths["instances"]), workers=workers, max_sandboxes=n_tasks)
    with ExecutionScorer(cfg) as scorer:  # each held-out row carries its state (data build --with-state)
        ex = scorer(completions, experts, prompts=[r["prompt"] for r in rows],
                    instance_id=[r["instance_id"] for r in rows], state=[r["state"] for r in rows])  # fmt: skip
    n = len(rows)
    return {
        "step_instances": n,
        "step_similarity": sum(text) / n,
        "exact_actions": sum(t == 1.0 for t in text) / n,
        "format_failures": sum(t == FORMAT_FAILURE for t in text) / n,
        "exec_step_score": sum(ex) / n,
    }


def evaluate(model_dir: Path, paths: dict, folder: Path, workers: int) -> dict:
    done = folder / "metrics.json"
    if done.is_file():
        return json.loads(done.read_text())
    t = time.monotonic()
    log = folder / "eval.log"
    swesrl("run", "-i", str(paths["heldout"]), "-m", f"hf:{model_dir}", "-o", str(folder / "agent"),
           "-w", str(workers), "-c", "agent_tiny.yaml", "--repo-mirror", str(paths["mirror"]), log=log)  # fmt: skip
    swesrl("eval", "-i", str(paths["heldout"]), "-p", str(folder / "agent" / "preds.jsonl"), "-o",
           str(folder / "harness"), "--run-id", "heldout", "-w", str(workers), "--repo-mirror", str(paths["mirror"]),
           log=log)  # fmt: skip
    summary = json.loads((folder / "harness" / "heldout" / "summary.json").read_text())
    n = len(read_jsonl(paths["heldout"]))
    errors = [p.parent.name for p in (folder / "agent").glob("*/traj.json")
              if json.loads(p.read_text())["info"].get("exit_status") == "error"]  # fmt: skip
    if errors:
        raise SystemExit(f"agent run errors on {len(errors)} tasks (first: {errors[0]}); see {log}")
    metrics = {
        "tasks": n,
        "resolved": summary["resolved_instances"],
        "resolve_rate": summary["resolved_instances"] / n,
        "resolved_ids": summary.get("resolved_ids", []),
        **step_scores(model_dir, paths, workers),
        "eval_seconds": round(time.monotonic() - t, 1),
    }
    done.write_text(json.dumps(metrics, indent=2))
    return metrics


def run_arm(paths: dict, work: Path, arm: str, seed: int, steps: int, workers: int) -> dict:
    name = f"{arm}-s{seed}"
    result_file = work / "results" / f"{name}.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    out_dir = work / "runs" / name / "srl"
    t = time.monotonic()
    if not (out_dir / "final" / "config.json").is_file():
        cfg = srl_config(paths, arm, seed, out_dir, steps, workers)
        swesrl("train", "srl", "--config", str(cfg), log=work / "runs" / name / "train.log")
    train_s = time.monotonic() - t
    metrics_file = out_dir / "metrics.jsonl"
    logged = read_jsonl(metrics_file) if metrics_file.is_file() else []
    rewards = [m["reward"] for m in logged if "reward" in m]
    rounds = [m["dynamic_sampling/rounds"] for m in logged if "dynamic_sampling/rounds" in m]
    result = {
        "arm": arm,
        "seed": seed,
        "steps": steps,
        "train_seconds": round(train_s, 1),
        "train_reward_first_last": [rewards[0], rewards[-1]] if rewards else None,
        "mean_generation_rounds": statistics.mean(rounds) if rounds else None,
        **evaluate(out_dir / "final", paths, work / "runs" / name / "eval", workers),
    }
    result_file.parent.mkdir(parents=True, exist_ok=True)
    result_file.write_text(json.dumps(result, indent=2))
    return result


def mean_std(xs: list[float]) -> tuple[float, float]:
    return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0) if xs else (float("nan"), 0.0)


def summarise(results: list[dict], start: dict | None, args) -> dict:
    arms = {}
    for arm in ARMS:
        rs = [r for r in results if r["arm"] == arm]
        if rs:
            arms[arm] = {
                "seeds": [r["seed"] for r in rs],
                **{m: dict(zip(("mean", "std"), mean_std([r[m] for r in rs]), strict=True)) for m in METRICS},
                "resolved": [r["resolved"] for r in rs],
                "train_seconds": [r["train_seconds"] for r in rs],
            }
    verdict = {}
    for m in METRICS:
        have = {a: v[m] for a, v in arms.items() if len(v["seeds"]) >= 2}
        if len(have) >= 2:
            ranked = sorted(have.items(), key=lambda kv: -kv[1]["mean"])
            (best, b), (second, s) = ranked[0], ranked[1]
            gap = b["mean"] - s["mean"]
            verdict[m] = {
                "best": best,
                "runner_up": second,
                "gap": gap,
                "exceeds_spread": gap > max(b["std"], s["std"]),
            }
    return {
        "command": " ".join(["python", "bench/reward_ablation.py", *sys.argv[1:]]),
        "srl": SRL | {"steps": args.steps},
        "start_sft": start,
        "arms": arms,
        "verdict": verdict,
        "runs": results,
        "load_average": os.getloadavg(),
    }


def print_table(summary: dict) -> None:
    cols = ("resolve rate", "step similarity", "exact actions", "exec step score")
    print(f"\n{'arm':<10} {'seeds':<7} " + " ".join(f"{c:>17}" for c in cols))
    if summary["start_sft"]:
        s = summary["start_sft"]
        print(f"{'SFT start':<10} {'-':<7} " + " ".join(f"{s[m]:>17.3f}" for m in METRICS))
    for arm, v in summary["arms"].items():
        cells = " ".join(f"{v[m]['mean']:>9.3f} ± {v[m]['std']:.3f}" for m in METRICS)
        print(f"{arm:<10} {len(v['seeds']):<7} {cells}")
    for m, v in summary["verdict"].items():
        more = "exceeds" if v["exceeds_spread"] else "does NOT exceed"
        print(
            f"{m}: {v['best']} leads {v['runner_up']} by {v['gap']:+.3f}, which {more} the seed spread (std)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/swesrl-ablation"))
    ap.add_argument(
        "--demo-out", type=Path, default=None, help="A finished `swesrl demo` run (default WORK/demo)."
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    ap.add_argument("--steps", type=int, default=SRL["steps"])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    paths = prepare(work, (args.demo_out or work / "demo").resolve())
    start = evaluate(paths["sft"], paths, work / "runs" / "sft" / "eval", args.workers)
    results: list[dict] = []
    for seed in args.seeds:
        for arm in args.arms:
            t = time.monotonic()
            results.append(run_arm(paths, work, arm, seed, args.steps, args.workers))
            r = results[-1]
            print(f"{arm} seed {seed}: resolved {r['resolved']}/{r['tasks']}, step similarity "
                  f"{r['step_similarity']:.3f}, exec {r['exec_step_score']:.3f} ({time.monotonic() - t:.0f}s)",
                  flush=True)  # fmt: skip
            summary = summarise(results, start, args)
            OUT.parent.mkdir(parents=True, exist_ok=True)
            OUT.write_text(json.dumps(summary, indent=2) + "\n")
    print_table(summarise(results, start, args))
    print(f"\nwrote {OUT}")


if __name__ == "__main__":
    main()
