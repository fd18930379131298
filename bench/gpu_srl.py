"""GPU check: 20 SRL steps on a randomly initialised ~0.5B Qwen2-architecture model in bf16.

One prepared script (<= 8 minutes on one H100): builds the model locally (no download), writes
synthetic step instances of realistic prompt length, runs `swesrl.training.srl.train_srl` (TRL
GRPOTrainer + the SRL reward) and prints step time, generated tokens/s and peak GPU memory.
Random weights never follow the action format (every reward is -1), so dynamic sampling is off
here: the step still generates, scores, and runs the full forward/backward.

    python bench/gpu_srl.py            # on a GPU
    python bench/gpu_srl.py --dry-run  # tiny model, 2 steps, CPU: checks the script end to end
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def synthetic_srl(path: Path, n: int, obs_lines: int) -> None:
    rows = []
    for i in range(n):
        obs = "\n".join(
            f"src/pkg/mod_{i}_{k}.py:{k}: def handler_{k}(request, *args): return None"
            for k in range(obs_lines)
        )
        prompt = [
            {
                "role": "system",
                "content": "You are a software engineering agent. Think in <think></think>, then call one tool.",
            },
            {
                "role": "user",
                "content": f"Issue {i}: the parser drops the last element of a list when it is empty.",
            },
            {
                "role": "assistant",
                "content": f"<function=bash>\n<parameter=command>grep -rn parse src/ | head -{obs_lines}</parameter>\n</function>",
            },
            {"role": "user", "content": f"OBSERVATION:\n{obs}"},
        ]
        act = f"<function=str_replace_editor>\n<parameter=command>view</parameter>\n<parameter=path>/testbed/src/pkg/mod_{i}.py</parameter>\n</function>"
        rows.append({"instance_id": f"b{i}", "step": 1, "n_steps": 3, "prompt": prompt, "expert_action": act})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="Tiny model, 2 steps, CPU.")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--prompts", type=int, default=8, help="Prompts per step (B).")
    ap.add_argument("--generations", type=int, default=8, help="Rollouts per prompt (G).")
    ap.add_argument("--completion-tokens", type=int, default=256)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu_srl.json"))
    args = ap.parse_args()

    import torch

    from swesrl.config import load_config
    from swesrl.training.srl import SRLConfig, train_srl
    from swesrl.training.tiny import HALF_B_SHAPE, build_tiny_model

    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        raise SystemExit("no CUDA GPU: run with --dry-run to check the script on CPU")
    if args.dry_run:
        args.steps, args.prompts, args.generations, args.completion_tokens = 2, 2, 2, 16
    work = Path(tempfile.mkdtemp(prefix="gpu_srl_"))
    t0 = time.perf_counter()
    if args.dry_run:
        model_dir = build_tiny_model(work / "model", seed=0)
    else:  # ~0.5B parameters: 24 layers of width 1024 (Qwen2.5-0.5B-like depth and MLP ratio)
        model_dir = build_tiny_model(work / "model", seed=0, **HALF_B_SHAPE)
    build_s = time.perf_counter() - t0
    synthetic_srl(work / "srl.jsonl", max(64, args.prompts * 4), obs_lines=4 if args.dry_run else 40)
    micro = args.prompts * args.generations if args.dry_run else 16
    cfg = load_config(
        SRLConfig,
        base={
            "model": {
                "path": str(model_dir),
                "dtype": "float32" if args.dry_run else "bfloat16",
                "attn_implementation": None if args.dry_run else "sdpa",
            },
            "data": {"path": str(work / "srl.jsonl")},
            "dynamic_sampling": {"enabled": False},
            "train": {
                "prompts_per_step": args.prompts,
                "num_generations": args.generations,
                "micro_batch_size": micro,
                "learning_rate": 5e-7,
                "max_steps": args.steps,
                "temperature": 1.0,
                "max_completion_length": args.completion_tokens,
                "beta": 0.0,
                "max_grad_norm": 1.0,
                "bf16": cuda and not args.dry_run,
            },
            "output": {
                "dir": str(work / "run"),
                "save_steps": 10_000,
                "report_to": ["none"],
                "plots": False,
                "resume": False,
            },
        },
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t1 = time.perf_counter()
    summary = train_srl(cfg)
    wall = time.perf_counter() - t1
    rows = [json.loads(line) for line in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "step_time" in r]
    step_times = [r["step_time"] for r in steps]
    tok_s = [r["tokens_per_second"] for r in steps if "tokens_per_second" in r]
    n_params = sum(
        p.numel()
        for p in __import__("safetensors.torch", fromlist=["x"])
        .load_file(str(Path(summary["final_model"]) / "model.safetensors"))
        .values()
    )
    result = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu (dry run)",
        "params": n_params,
        "steps": summary["global_step"],
        "prompts_per_step": args.prompts,
        "generations": args.generations,
        "max_completion_tokens": args.completion_tokens,
        "model_build_s": round(build_s, 1),
        "train_wall_s": round(wall, 1),
        "step_time_s_median": round(statistics.median(step_times), 3) if step_times else None,
        "step_time_s_after_first": round(statistics.mean(step_times[1:]), 3) if len(step_times) > 1 else None,
        "generated_tokens_per_s_median": round(statistics.median(tok_s), 1) if tok_s else None,
        "mean_completion_length": round(
            statistics.mean(r.get("completions/mean_length", 0) for r in steps), 1
        )
        if steps
        else None,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
    }
    print(f"\n{'metric':<32} value")
    for k, v in result.items():
        print(f"{k:<32} {v}")
    out = Path(args.out if not args.dry_run else str(Path(args.out).with_name("gpu_srl_dryrun.json")))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
