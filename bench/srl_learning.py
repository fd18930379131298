"""Learning check: mean SRL reward on held-out step instances rises over a short CPU SRL run.

Bundled tasks (`swesrl.tasks.build_suite`) -> expert trajectories through the real agent loop ->
step instances (`swesrl.training.data.build_dataset`, the paper's context) -> a starting policy ->
for each seed, SRL (the trainer's GRPO with the similarity reward and dynamic sampling) on the
train step instances. Measured before and after SRL: the mean `srl_reward` of the greedy action on
held-out step instances (tasks never trained on). The stages reuse the demo's (`swesrl.demo.prepare`),
so the data is exactly the demo's.

The starting policy (`--start`): `shipped` (default) is the demo's checkpoint
(swesrl/checkpoints/tiny-demo, see scripts/pretrain_tiny.py; it never saw the demo suite);
`scratch` builds a fresh tiny model and gives it `--sft-steps` of SFT first (the earlier version
of this bench: its policy fails the format most of the time, so SRL gets little signal);
`demo-sft` is where the demo's SRL stage starts (shipped + the demo's SFT warm-up); or a
checkpoint folder.

Several `--srl-lr` values make it a learning-rate sweep (every lr x every seed). Besides the
held-out reward it measures the greedy reward on `--train-rows` train step instances: that is the
objective SRL optimises, so it separates "the optimiser does not move the policy" from "what it
learns does not transfer". Pick an lr by the train column, not the held-out one. The held-out
mean mixes two things (a format failure scores -1): the columns "well-formed" (mean over
parseable actions) and "format fail" (share of unparseable ones) tell them apart.

    python bench/srl_learning.py [--seeds 0 1 2] [--srl-steps 16] [--srl-lr 5e-5 3e-4]
        [--start shipped|demo-sft|scratch|DIR] [--out runs/bench_srl_learning]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def greedy_reward(model_dir: Path, rows: list[dict], max_new_tokens: int) -> dict:
    from swesrl.agent.models import HFModel
    from swesrl.training.rewards import FORMAT_FAILURE, srl_reward

    model = HFModel(str(model_dir), device="cpu", max_new_tokens=max_new_tokens)
    completions: list[str] = []
    for i in range(0, len(rows), 8):
        chunk = rows[i : i + 8]
        completions += [o[0] for o in model.generate_batch([r["prompt"] for r in chunk], 1, temperature=0)]
    rewards = srl_reward(completions, [r["expert_action"] for r in rows])
    return {
        "mean_reward": statistics.mean(rewards),
        "format_failures": sum(r == FORMAT_FAILURE for r in rewards) / len(rewards),
        "exact": sum(r == 1.0 for r in rewards) / len(rewards),
        "mean_reward_well_formed": statistics.mean([r for r in rewards if r != FORMAT_FAILURE] or [0.0]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_srl_learning"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--start",
        default="shipped",
        help="`shipped`, `demo-sft` (shipped + the demo's SFT), `scratch` or a folder.",
    )
    ap.add_argument("--train-tasks", type=int, default=68)
    ap.add_argument("--test-tasks", type=int, default=29)
    ap.add_argument("--heldout-rows", type=int, default=200)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--sft-steps", type=int, default=40)
    ap.add_argument("--srl-steps", type=int, default=16)
    ap.add_argument("--srl-lr", type=float, nargs="+", default=[1e-4], help="One or more (a sweep).")
    ap.add_argument("--train-rows", type=int, default=96, help="Train step instances scored greedily.")
    ap.add_argument("--prompts-per-step", type=int, default=4)
    ap.add_argument("--num-generations", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=1.0, help="SRL sampling temperature (paper: 1.0).")
    ap.add_argument("--max-new-tokens", type=int, default=224, help="As the demo (agent_tiny.yaml).")
    args = ap.parse_args()

    from swesrl.config import load_config
    from swesrl.demo import DemoConfig, prepare, sft_config, srl_or_skip
    from swesrl.training.sft import train_sft
    from swesrl.training.tiny import SHIPPED_CHECKPOINT, build_tiny_model
    from swesrl.utils import iter_jsonl, setup_logging

    setup_logging(logging.INFO)
    out = Path(args.out)
    cfg = load_config(
        DemoConfig,
        [
            "demo.yaml",
            f"suite.train_tasks={args.train_tasks}",
            f"suite.test_tasks={args.test_tasks}",
            "model.checkpoint=scratch",
            "workers=2",
            f"srl.steps={args.srl_steps}",
            f"srl.prompts_per_step={args.prompts_per_step}",
            f"srl.num_generations={args.num_generations}",
            f"srl.temperature={args.temperature}",
            f"srl.max_completion_length={args.max_new_tokens}",
        ]
        # from scratch the format must be learnt first: more SFT at a higher lr than the demo's warm-up
        + ([f"sft.steps={args.sft_steps}", "sft.learning_rate=3e-3"] if args.start == "scratch" else []),
    )
    demo = prepare(out, cfg)  # the demo's stages 1-3: suite, expert trajectories, step data
    stage, data = demo.pipe.stage, out / "data" / "train"

    def sft(model: Path, out_dir: Path, steps: int | None = None) -> dict:
        s = cfg.sft.model_copy(update={"steps": steps} if steps else {})
        return train_sft(sft_config(s, model, data / "sft_steps.jsonl", out_dir, 0))

    if args.start == "demo-sft":  # where the demo's SRL stage starts: shipped + the demo's SFT warm-up
        tag = "demo_sft"
        sft_run = stage(f"sft_{tag}", lambda: sft(SHIPPED_CHECKPOINT, out / f"sft_{tag}"))
        start_model = Path(sft_run["final_model"])
    elif args.start != "scratch":
        src = SHIPPED_CHECKPOINT if args.start == "shipped" else Path(args.start)
        tag = "shipped" if args.start == "shipped" else src.name
        start_model = Path(stage(f"model_{tag}", lambda: {"final_model": str(src)})["final_model"])
    else:
        tag = f"h{args.hidden}_l{args.layers}_s{args.sft_steps}"
        start_model = None
    model_dir = out / "model" / tag

    def make_model() -> dict:
        rows = iter_jsonl(out / "data" / "train" / "sft_steps.jsonl")
        texts = [json.dumps({"messages": r["prompt"] + r["completion"]}) for r in rows]
        build_tiny_model(
            model_dir,
            texts=texts,
            hidden_size=args.hidden,
            num_layers=args.layers,
            max_position_embeddings=4096,
        )
        return {"path": str(model_dir)}

    if start_model is None:
        stage(f"model_{tag}", make_model)
        sft_run = stage(f"sft_{tag}", lambda: sft(model_dir, out / f"sft_{tag}", args.sft_steps))
        start_model = Path(sft_run["final_model"])
    test = demo.test
    test_ids = {i["instance_id"] for i in test}
    rows = [r for r in iter_jsonl(out / "data" / "test" / "srl.jsonl") if r["instance_id"] in test_ids]
    rows = rows[: args.heldout_rows]
    train_rows = list(iter_jsonl(out / "data" / "train" / "srl.jsonl"))[: args.train_rows]
    n = args.max_new_tokens
    before = stage(f"heldout_before_{tag}_m{n}", lambda: greedy_reward(start_model, rows, n))
    train_before = stage(
        f"train_before_{tag}_m{n}_r{len(train_rows)}", lambda: greedy_reward(start_model, train_rows, n)
    )
    results = []
    for lr in args.srl_lr:
        for seed in args.seeds:
            srl_cfg = cfg.srl.model_copy(update={"learning_rate": lr})
            run = f"srl_{tag}_t{args.temperature}_lr{lr}_n{args.srl_steps}_g{args.num_generations}_seed{seed}"
            srl_dir = out / run
            srl = stage(
                run, lambda c=srl_cfg, o=srl_dir, s=seed: srl_or_skip(c, str(start_model), data, o, s)
            )
            final = Path(srl["final_model"])
            after = stage(f"heldout_after_{run}_m{n}", lambda f=final: greedy_reward(f, rows, n))
            train_after = stage(
                f"train_after_{run}_m{n}_r{len(train_rows)}", lambda f=final: greedy_reward(f, train_rows, n)
            )
            metrics = [json.loads(line) for line in (srl_dir / "metrics.jsonl").read_text().splitlines()]
            steps = [m for m in metrics if "reward" in m]
            filtered = [
                m["dynamic_sampling/filtered_fraction"]
                for m in steps
                if "dynamic_sampling/filtered_fraction" in m
            ]
            results.append(
                {
                    "lr": lr,
                    "seed": seed,
                    "before": before,
                    "after": after,
                    "train_before": train_before,
                    "train_after": train_after,
                    "rollout_reward_first": steps[0]["reward"],
                    "rollout_reward_last": steps[-1]["reward"],
                    "filtered_fraction_mean": statistics.mean(filtered) if filtered else None,
                    "srl_steps": srl["global_step"],
                }
            )
    print(
        f"\nheld-out step instances: {len(rows)} (from {len(test)} held-out tasks); train step instances scored: "
        f"{len(train_rows)}; SRL steps: {args.srl_steps} x {args.prompts_per_step} prompts x G={args.num_generations}"
    )
    print(
        f"{'lr':>8} {'seed':>4} {'train before':>12} {'train after':>11} {'held-out before':>15} {'held-out after':>14} "
        f"{'delta':>7} {'well-formed b/a':>15} {'format fail b/a':>15} {'exact b/a':>10} {'filtered':>8}"
    )
    for r in results:
        b, a = r["before"], r["after"]
        f = r["filtered_fraction_mean"]
        print(
            f"{r['lr']:>8.0e} {r['seed']:>4} {r['train_before']['mean_reward']:>12.3f} {r['train_after']['mean_reward']:>11.3f} "
            f"{b['mean_reward']:>15.3f} {a['mean_reward']:>14.3f} {a['mean_reward'] - b['mean_reward']:>+7.3f} "
            f"{b['mean_reward_well_formed']:>9.3f}/{a['mean_reward_well_formed']:.3f} "
            f"{b['format_failures']:>9.3f}/{a['format_failures']:.3f} "
            f"{b['exact']:>5.2f}/{a['exact']:.2f} {'-' if f is None else f'{f:.2f}':>8}"
        )
    summary = {}
    for lr in args.srl_lr:
        rs = [r for r in results if r["lr"] == lr]
        deltas = [r["after"]["mean_reward"] - r["before"]["mean_reward"] for r in rs]
        tdeltas = [r["train_after"]["mean_reward"] - r["train_before"]["mean_reward"] for r in rs]
        summary[str(lr)] = {
            "before": before["mean_reward"],
            "after_mean": statistics.mean(r["after"]["mean_reward"] for r in rs),
            "after_std": statistics.pstdev(r["after"]["mean_reward"] for r in rs),
            "delta_mean": statistics.mean(deltas),
            "seeds_improved": sum(x > 0 for x in deltas),
            "train_before": train_before["mean_reward"],
            "train_after_mean": statistics.mean(r["train_after"]["mean_reward"] for r in rs),
            "train_after_std": statistics.pstdev(r["train_after"]["mean_reward"] for r in rs),
            "train_delta_mean": statistics.mean(tdeltas),
        }
        m = summary[str(lr)]
        print(
            f"lr {lr:.0e}, {len(rs)} seeds: train {m['train_before']:.3f} -> {m['train_after_mean']:.3f} "
            f"+- {m['train_after_std']:.3f}; held-out {m['before']:.3f} -> {m['after_mean']:.3f} "
            f"+- {m['after_std']:.3f} (delta {m['delta_mean']:+.3f}; {m['seeds_improved']}/{len(rs)} seeds improved)"
        )
    dest = ROOT / "bench" / "results" / "srl_learning.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(
        json.dumps(
            {
                "args": vars(args),
                "heldout_rows": len(rows),
                "heldout_tasks": len(test),
                "train_rows": len(train_rows),
                "summary": summary,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {dest}")


if __name__ == "__main__":
    main()
