"""The paper's comparison at small scale: SFT only vs SFT warm-up then SRL vs SRL then RLVR.

    python bench/learning.py --seeds 0 1 2 --steps 6 --test-tasks 8

Every arm starts from the same checkpoint (the demo's: the shipped one, else a fresh tiny model),
trains on the bundled suite's train split (the demo's suite, data and agent config) and is
evaluated on the same held-out tasks: resolve rate (agent loop in local sandboxes + harness) and
mean step similarity (greedy action vs expert, SRL reward) on held-out step instances.

Equal training compute: every arm makes 2 x `--steps` optimizer updates on 8 sequences each
(SFT: batch 8; SRL: 2 prompts x 4 rollouts; RLVR: 2 episodes x 4 rollouts' turns, the
rollout and grading cost not counted), split half and half between its two stages.
RLVR here is the minimal on-policy multi-turn GRPO below (reward = harness `resolved`), because
the trainer's RLVR stage had not landed when this was written; replace `rlvr()` with it then.
Prints mean and std over seeds and writes bench/results/learning.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from swesrl.config import load_config  # noqa: E402
from swesrl.demo import Demo, DemoConfig  # noqa: E402
from swesrl.utils import atomic_write_json, setup_logging  # noqa: E402

log = logging.getLogger("bench.learning")
ARMS = ("sft_only", "sft_then_srl", "srl_then_rlvr")


def rlvr(
    demo: Demo,
    base: Path,
    out_dir: Path,
    steps: int,
    seed: int,
    tasks_per_step: int = 2,
    G: int = 4,
    lr: float = 5e-5,
) -> dict:
    """On-policy multi-turn GRPO with the verifiable reward (1 if the harness resolves the patch)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swesrl.agent.context import select_context
    from swesrl.agent.loop import run_agent
    from swesrl.agent.models import HFModel
    from swesrl.envs import SandboxConfig, env_for_instance
    from swesrl.harness import grade_patch
    from swesrl.training.grpo import group_advantages

    final = out_dir / "final"
    if (final / "config.json").is_file():
        return json.loads((out_dir / "summary.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    hf = HFModel.__new__(HFModel)  # the agent backend around the in-memory policy
    hf.__dict__.update(model=model, tokenizer=tok, device="cpu", max_new_tokens=128, name="hf:rlvr")
    hf._lock = __import__("threading").Lock()
    hf._pending, hf._pending_lock = [], __import__("threading").Lock()
    tok.padding_side = "left"
    config = demo.agent_config(sampling={"temperature": 1.0, "max_new_tokens": 128}, step_limit=6)
    train, _ = demo.split()
    rng = random.Random(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    log_rows = []

    def episode(inst):
        with env_for_instance(inst, config.sandbox, mirror=demo.mirror) as env:
            traj = run_agent(inst, hf, env, config)
        rep = grade_patch(
            inst, traj["info"].get("submission") or "", SandboxConfig(), demo.mirror, timeout=120
        )
        return traj, float(rep["resolved"])

    for step in range(steps):
        insts = rng.sample(train, tasks_per_step)
        model.eval()
        with ThreadPoolExecutor(demo.cfg.workers) as pool:
            results = list(pool.map(episode, [i for i in insts for _ in range(G)]))
        model.train()
        rewards = torch.tensor([r for _, r in results])  # (tasks*G,)
        adv = group_advantages(rewards, G)  # (tasks*G,)
        loss_terms = []
        for (traj, _), a in zip(results, adv.tolist(), strict=True):
            if a == 0.0:
                continue
            msgs = traj["messages"]
            for i in range(2, len(msgs)):
                if msgs[i]["role"] != "assistant":
                    continue
                prompt = select_context(msgs[:i], config.context)
                p_text = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
                p_ids = tok(p_text, add_special_tokens=False)["input_ids"]
                c_ids = tok(msgs[i]["content"], add_special_tokens=False)["input_ids"][:128]
                ids = torch.tensor([p_ids + c_ids])
                logits = model(input_ids=ids).logits[0, len(p_ids) - 1 : -1]  # (T, V)
                logp = torch.log_softmax(logits, -1).gather(-1, ids[0, len(p_ids) :, None]).squeeze(-1)
                loss_terms.append(-a * logp.mean())
        if (
            loss_terms
        ):  # on-policy, one update per batch: the clipped ratio is 1, the gradient is A * grad log p
            opt.zero_grad()
            torch.stack(loss_terms).mean().backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        log_rows.append(
            {"step": step + 1, "reward_mean": rewards.mean().item(), "updated_turns": len(loss_terms)}
        )
        log.info(
            "rlvr step %d: mean reward %.3f, %d turns with signal", step + 1, rewards.mean(), len(loss_terms)
        )
    model.save_pretrained(final)
    tok.save_pretrained(final)
    summary = {
        "global_step": steps,
        "final_model": str(final),
        "log": log_rows,
        "steps_with_signal": sum(r["updated_turns"] > 0 for r in log_rows),
    }
    atomic_write_json(out_dir / "summary.json", summary)
    return summary


def run_arm(demo: Demo, arm: str, seed: int, base: Path, steps: int, work: Path) -> dict:
    d = work / arm / f"seed{seed}"
    done = d / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    demo.seed = seed
    t0 = time.monotonic()
    if arm == "sft_only":
        first = demo.train_sft(base, d / "sft", steps=2 * steps)
        final, second = Path(first["final_model"]), {}
    elif arm == "sft_then_srl":
        first = demo.train_sft(base, d / "sft", steps=steps)
        second = demo.train_srl(Path(first["final_model"]), d / "srl", steps=steps)
        final = Path(second["final_model"])
    else:
        first = demo.train_srl(base, d / "srl", steps=steps)
        second = rlvr(demo, Path(first["final_model"]), d / "rlvr", steps, seed)
        final = Path(second["final_model"])
    train_s = time.monotonic() - t0
    ev = demo.evaluate_model(f"{arm}-{seed}", final, folder=d / "eval")
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
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    work = Path(args.work)
    cfg = load_config(DemoConfig, ["demo.yaml"])
    cfg.suite.train_tasks, cfg.suite.test_tasks = args.train_tasks, args.test_tasks
    cfg.sft.batch_size, cfg.srl.prompts_per_step, cfg.srl.num_generations = 8, 2, 4
    demo = Demo(work, cfg, minutes=0, seed=0)
    demo.stage("suite", demo.build_suite)
    demo.stage("expert", demo.run_experts)
    demo.stage("data", demo.build_data)
    model = demo.stage("model", demo.make_model)
    base_eval = demo.stage("eval_base", lambda: demo.evaluate_model("base", Path(model["path"])))
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
