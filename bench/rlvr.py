"""RLVR throughput: the TRL-engine RLVR (swesrl/training/rlvr.py) against the loop it replaced.

Same model (the shipped tiny checkpoint), same bundled tasks, same episode budget (B instances x G
episodes, one optimizer step each), same agent (agent_tiny.yaml), same sampling (temperature 1.0, the
same tokens per turn), local bubblewrap sandboxes and harness grading in both. The baseline is the
old loop (bench/rlvr_baseline.py, a copy of swesrl/training/rlvr.py at 5c01b7c) with `workers`
threads: its turns are generated one at a time behind a lock. The new one runs every episode at once
and decodes their turns in one continuously batched loop (finished replies leave, new turns join).
Each arm runs in its own process, arms alternate, repeated. Each run does `--warmup` steps first
(imports, the sandbox secret scan, the task environment: costs a training run pays once) and then
`--steps` measured steps, the steady state a run spends its time in. Time is the optimizer step's
wall time (rollouts + grading + update); "generated tokens/s" is the steps' generated tokens over
that same time, so it follows episodes/min, it is not the decoder's own rate. Episode lengths are
sampled (temperature 1), so one run's episodes/min varies with them: the speedup is the ratio of the
totals over all repeats, with the spread of the back-to-back pairs' ratios. The learning rate is 0 in
both arms (the update's work is all done, the weights stay): every step samples from the same shipped
policy, where a warm-up step's update would leave the arms with different policies (different update
code) and so with different episode lengths. The new arm does not run turns whose advantage is 0 through
the update (exact with its dapo loss and beta 0; the old loop trains them to a zero gradient): the
result gives its turn samples and how many were trained. The machine's load average
at the start and end is recorded: other work slows both arms.

    python bench/rlvr.py [--instances 2] [--generations 4] [--repeats 5] [--warmup 1] [--steps 1]

Prints a table; writes bench/results/rlvr.json.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "swesrl" / "checkpoints" / "tiny-demo"
RESULTS = ROOT / "bench" / "results" / "rlvr.json"
IDS = ["swesrl-bench__maple-box-110", "swesrl-bench__zephyr-core-140", "swesrl-bench__velvet-box-228"]


def arm_old(
    suite: Path, out: Path, ids: list[str], g: int, workers: int, max_tokens: int, steps: int
) -> list:
    sys.path.insert(0, str(ROOT / "bench"))
    import rlvr_baseline as old

    counted = {"tokens": 0}
    per_step: list[dict] = []

    def record(path, metrics):  # the old loop's metrics line, with the step's generated tokens
        per_step.append(
            {
                "episodes": metrics["episodes"],
                "step_s": metrics["step_time"],
                "generated_tokens": counted["tokens"],
            }
        )
        counted["tokens"] = 0

    old.append_jsonl = record

    class CountingPolicy(old.PolicyModel):
        def generate(self, messages, n=1, **sampling):
            replies = super().generate(messages, n, **sampling)
            counted["tokens"] += sum(
                len(self.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies
            )
            return replies

    old.PolicyModel = CountingPolicy
    cfg = old.RLVRConfig.model_validate(  # the old schema (rlvr_tiny.yaml now holds the new one)
        {
            "model": {"path": str(TINY), "dtype": "float32"},
            "data": {"instances": str(suite), "ids": ids},
            "agent": ["agent.yaml", "agent_tiny.yaml", "step_limit=6"],
            "sandbox": {"backend": "local", "timeout": 30},
            "grade_timeout": 120,
            "train": {
                "prompts_per_step": len(ids),
                "num_generations": g,
                "micro_batch_size": 4,
                "learning_rate": 0.0,  # the same policy at every step in both arms (see the docstring)
                "max_steps": steps,
                "temperature": 1.0,
                "max_new_tokens": max_tokens,
                "max_rounds": 1,
                "workers": workers,
            },
            "output": {"dir": str(out), "save_steps": 1, "plots": False},
        }
    )
    old.train_rlvr(cfg)
    return per_step


def arm_new(
    suite: Path, out: Path, ids: list[str], g: int, workers: int, max_tokens: int, steps: int
) -> list:
    from swesrl.training.rlvr import load_rlvr_config, train_rlvr

    cfg = load_rlvr_config(
        "rlvr_tiny.yaml",
        [
            f"model.path={TINY}",
            f"data.instances={suite}",
            "data.split=null",
            f"data.ids=[{', '.join(ids)}]",
            f"output.dir={out}",
            "output.plots=false",
            "agent=[agent.yaml, agent_tiny.yaml, step_limit=6]",
            f"train.prompts_per_step={len(ids)}",
            f"train.num_generations={g}",
            f"train.max_steps={steps}",
            "train.learning_rate=0.0",
            f"train.max_completion_length={max_tokens}",
            f"rollout.max_concurrent_episodes={workers}",
            "dynamic_sampling.max_rounds=1",
            # the old loop's micro_batch_size (4) counts turn sequences per forward/backward pass; the
            # new one's counts episodes, and an episode is ~5 turn sequences (srl context): 1 here is
            # ~5 sequences per pass, the nearest to the old loop's 4 (4 here would be ~19)
            "train.micro_batch_size=1",
        ],
    )
    train_rlvr(cfg)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [
        {
            "episodes": m["rollout/episodes"],
            "step_s": m["step_time"],
            "rollout_s": m["rollout/seconds"],  # episodes + grading; the rest of the step is the update
            "generated_tokens": m["rollout/generated_tokens"],
            # turn samples, and those with a gradient (zero-advantage turns are skipped when exact)
            "turn_samples": m.get("rollout/turn_samples", 0),
            "trained_turn_samples": m.get("rollout/trained_turn_samples", 0),
        }
        for m in rows
        if "step_time" in m
    ]


def cpu_model() -> str:
    """The processor's name (/proc/cpuinfo): the arms' ratio differs between machines of 2 cores."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def child(args) -> None:
    fn = arm_old if args.child == "old" else arm_new
    steps = args.warmup + args.steps
    r = fn(Path(args.suite), Path(args.out), args.ids, args.generations, args.workers, args.max_tokens, steps)
    Path(args.out, "result.json").write_text(json.dumps(r))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--instances", type=int, default=2)
    p.add_argument("--generations", type=int, default=4)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1, help="steps run first and not measured (imports, caches)")
    p.add_argument("--steps", type=int, default=1, help="measured steps per run")
    p.add_argument("--max-tokens", type=int, default=224)
    p.add_argument("--results", default=str(RESULTS), help="where the JSON goes")
    p.add_argument("--child", choices=["old", "new"])
    p.add_argument("--suite")
    p.add_argument("--out")
    p.add_argument("--ids", nargs="*")
    p.add_argument("--workers", type=int)
    args = p.parse_args()
    if args.child:
        return child(args)
    from rich.console import Console
    from rich.table import Table

    from swesrl.tasks import build_suite

    work = Path(tempfile.mkdtemp(prefix="bench_rlvr_"))
    suite = build_suite(work / "suite", n=6, seed=5)
    ids = IDS[: args.instances]
    episodes = len(ids) * args.generations
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    load_start = os.getloadavg()  # other work on the machine slows both arms; recorded with the result
    for rep in range(args.repeats):
        for arm in ("old", "new"):
            out = work / f"{arm}{rep}"
            cmd = [sys.executable, __file__, "--child", arm, "--suite", str(suite), "--out", str(out)]
            cmd += ["--ids", *ids, "--workers", str(episodes), "--generations", str(args.generations)]
            cmd += [
                "--max-tokens",
                str(args.max_tokens),
                "--warmup",
                str(args.warmup),
                "--steps",
                str(args.steps),
            ]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if r.returncode:
                raise SystemExit(f"{arm} arm failed:\n{r.stderr[-3000:]}")
            measured = json.loads((out / "result.json").read_text())[args.warmup :]
            runs[arm].append({k: sum(m[k] for m in measured) for k in measured[0]})  # this run's steps

    def summary(rs: list[dict]) -> dict:
        # totals over every measured step of every run: episodes / time, tokens / time
        tot = {k: sum(r[k] for r in rs) for k in ("episodes", "step_s", "generated_tokens")}
        turns = {k: sum(r.get(k, 0) for r in rs) for k in ("turn_samples", "trained_turn_samples")}
        return {
            **(turns if turns["turn_samples"] else {}),  # the new arm's (the old loop trains every turn)
            "episodes_per_min": 60 * tot["episodes"] / tot["step_s"],
            "generated_tokens_per_s": tot["generated_tokens"] / tot["step_s"],
            "step_s": tot["step_s"] / (len(rs) * args.steps),
            "generated_tokens_per_episode": tot["generated_tokens"] / tot["episodes"],
            "runs": rs,
        }

    res = {k: summary(v) for k, v in runs.items()}
    ratio = res["new"]["episodes_per_min"] / res["old"]["episodes_per_min"]
    # each repeat's old and new runs ran back to back: their ratio, and its spread over repeats
    paired = [
        (60 * n["episodes"] / n["step_s"]) / (60 * o["episodes"] / o["step_s"])
        for o, n in zip(runs["old"], runs["new"], strict=True)
    ]
    result = {
        "setup": {
            "model": "swesrl/checkpoints/tiny-demo",
            "instances": ids,
            "episodes_per_step": episodes,
            "concurrent_episodes": episodes,
            "max_tokens_per_turn": args.max_tokens,
            "repeats": args.repeats,
            "warmup_steps": args.warmup,
            "measured_steps_per_run": args.steps,
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model(),
            "loadavg_1_5_15_start": [round(x, 2) for x in load_start],
            "loadavg_1_5_15_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
        },
        "old_loop": res["old"],
        "new_rlvr": res["new"],
        "speedup_episodes_per_min": ratio,
        "speedup_paired": {
            "median": statistics.median(paired),
            "min": min(paired),
            "max": max(paired),
            "all": paired,
        },
        "speedup_tokens_per_s": res["new"]["generated_tokens_per_s"] / res["old"]["generated_tokens_per_s"],
    }
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title=f"RLVR steps of {len(ids)} instances x {args.generations} episodes (tiny model, CPU)")
    for col in ("loop", "step s", "episodes/min", "generated tokens/s", "tokens/episode"):
        table.add_column(col)
    for name, key in (
        ("old loop (lock, one sequence at a time)", "old"),
        ("new (TRL engine, continuous batching)", "new"),
    ):
        r = res[key]
        table.add_row(
            name,
            f"{r['step_s']:.1f}",
            f"{r['episodes_per_min']:.2f}",
            f"{r['generated_tokens_per_s']:.1f}",
            f"{r['generated_tokens_per_episode']:.0f}",
        )
    Console().print(table)
    Console().print(
        f"speedup: {ratio:.2f}x episodes/min (paired repeats: median {statistics.median(paired):.2f}x, "
        f"{min(paired):.2f}-{max(paired):.2f}x), {result['speedup_tokens_per_s']:.2f}x tokens/s -> {results}"
    )


if __name__ == "__main__":
    main()
