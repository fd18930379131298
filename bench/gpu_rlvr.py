"""GPU check: RLVR steps on a randomly initialised ~0.5B Qwen2-architecture model in bf16.

One prepared script (<= 8 minutes on one H100/H200): builds the model locally (no download), a
bundled task suite, and runs `swesrl.training.rlvr.train_rlvr` (TRL GRPOTrainer, every episode of
the step at once in local bubblewrap sandboxes, turns generated together by transformers on the
GPU, harness grading). Random weights do not follow the action format, so episodes end on format
errors and every reward is 0: the steps measure rollout throughput (episodes/min, generated
tokens/s), the zero-advantage update and peak memory, not learning.

    python bench/gpu_rlvr.py            # on a GPU
    python bench/gpu_rlvr.py --dry-run  # tiny model, 1 step, CPU: checks the script end to end

Prints a table; writes bench/results/gpu_rlvr.json (gpu_rlvr_dryrun.json for --dry-run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="Tiny model, 1 step, CPU.")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--instances", type=int, default=8, help="Instances per step (B).")
    ap.add_argument("--generations", type=int, default=8, help="Episodes per instance (G).")
    ap.add_argument("--turn-tokens", type=int, default=256, help="Tokens per agent turn.")
    ap.add_argument(
        "--draft-tokens",
        type=int,
        default=0,
        help="rollout.draft_tokens: prompt-lookup drafts verified per decode step (0: off). Random weights "
        "rarely copy their context, so this measures the cost of a verified block more than its gain.",
    )
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu_rlvr.json"))
    ap.add_argument("--work", help="Folder for the model, tasks and run (default: a new temporary one).")
    args = ap.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    from swesrl.agent.models import load_pretrained
    from swesrl.tasks import build_suite
    from swesrl.training.rlvr import load_rlvr_config, train_rlvr
    from swesrl.training.tiny import HALF_B_SHAPE, build_tiny_model

    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        raise SystemExit("no CUDA GPU: run with --dry-run to check the script on CPU")
    if args.dry_run:
        args.steps, args.instances, args.generations, args.turn_tokens = 1, 2, 2, 16
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gpu_rlvr_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.dry_run:
        model_dir = build_tiny_model(work / "model", seed=0)
    else:  # ~0.5B parameters: 24 layers of width 1024 (Qwen2.5-0.5B-like depth and MLP ratio)
        model_dir = build_tiny_model(work / "model", seed=0, **HALF_B_SHAPE)
    build_s = time.perf_counter() - t0
    suite = build_suite(work / "suite", n=max(args.instances, 4), seed=3)
    episodes = args.instances * args.generations
    cfg = load_rlvr_config(
        "rlvr_tiny.yaml",
        [
            f"model.path={model_dir}",
            f"model.dtype={'float32' if args.dry_run else 'bfloat16'}",
            f"data.instances={suite}",
            "data.split=null",
            f"output.dir={work / 'run'}",
            "output.plots=false",
            "output.save_steps=10000",
            "agent=[agent.yaml, agent_tiny.yaml, step_limit=8]",
            f"train.prompts_per_step={args.instances}",
            f"train.num_generations={args.generations}",
            f"train.micro_batch_size={args.generations}",
            f"train.max_steps={args.steps}",
            f"train.max_completion_length={args.turn_tokens}",
            "train.learning_rate=5e-7",
            f"train.bf16={str(cuda and not args.dry_run).lower()}",
            f"rollout.max_concurrent_episodes={episodes}",
            "rollout.max_concurrent_sandboxes=8",
            f"rollout.max_batch={episodes}",
            "dynamic_sampling.max_rounds=1",
            f"rollout.draft_tokens={args.draft_tokens}",
        ],
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t1 = time.perf_counter()
    summary = train_rlvr(cfg)
    wall = time.perf_counter() - t1
    rows = [json.loads(line) for line in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "step_time" in r]

    def med(key):
        vals = [r[key] for r in steps if key in r]
        return round(statistics.median(vals), 2) if vals else None

    import transformers
    import trl

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(["python", *sys.argv]),
        "versions": f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}",
        "device": torch.cuda.get_device_name(0) if cuda else "cpu (dry run)",
        "params": sum(p.numel() for p in load_pretrained(summary["final_model"])[0].parameters()),
        "steps": summary["global_step"],
        "episodes_per_step": episodes,
        "max_turn_tokens": args.turn_tokens,
        "model_build_s": round(build_s, 1),
        "train_wall_s": round(wall, 1),
        "step_time_s_median": med("step_time"),
        "rollout_s_median": med("rollout/seconds"),
        "episodes_per_min_median": med("rollout/episodes_per_min"),
        "generated_tokens_per_s_median": med("rollout/generated_tokens_per_s"),
        "turns_per_episode_median": med("rollout/turns_per_episode"),
        "decode_rows_per_step_median": med("rollout/decode_rows_per_step"),
        "decode_ms_per_step_median": med("rollout/decode_ms_per_step"),
        "draft_tokens": args.draft_tokens,
        "decode_tokens_per_row_median": med("rollout/decode_tokens_per_row"),
        "draft_acceptance_median": med("rollout/draft_acceptance"),
        "failed_episodes_total": sum(r.get("rollout/failed_episodes", 0) for r in steps),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
    }
    table = Table(title="RLVR on " + result["device"])
    table.add_column("metric")
    table.add_column("value")
    for k, v in result.items():
        table.add_row(k, str(v))
    Console().print(table)
    out = Path(args.out if not args.dry_run else str(Path(args.out).with_name("gpu_rlvr_dryrun.json")))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    Console().print(f"wrote {out}")


if __name__ == "__main__":
    main()
