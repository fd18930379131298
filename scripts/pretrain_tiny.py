"""Make the tiny checkpoint `swesrl demo` starts from (swesrl/checkpoints/tiny-demo).

This script and its seeds are the source of truth for the shipped weights, made in three runs
(each continues the previous one with --init; every run's settings are in `pretrain.json`, the
earlier ones nested under "init"):

    # a: 25 min wall clock, names renamed once at load (script of commit 4d3791c)
    python scripts/pretrain_tiny.py --extra-suites 30 --hidden 128 --layers 4 --minutes 25 \
        --workers 2 --seed 0 --rename 0.8 --no-demo-train --work W --dest A
    # b: copy curriculum, names re-drawn per draw (commit 189ca3f)
    python scripts/pretrain_tiny.py --init A --extra-suites 30 --workers 2 --seed 0 --steps 1000 \
        --batch-size 16 --lr 2e-3 --rename 1.0 --short-context 0.6 --prompt-weight 0.3 \
        --no-demo-train --work W --dest B
    # c: names also from recombined bundled parts, full alphabet (commit 9cc9bf4) -> shipped
    python scripts/pretrain_tiny.py --init B --extra-suites 30 --workers 2 --seed 1 --steps 450 \
        --batch-size 16 --lr 1e-3 --rename 0.8 --short-context 0.5 --prompt-weight 0.3 \
        --no-demo-train --work W --dest swesrl/checkpoints/tiny-demo

Run a was wall-clock budgeted on a shared 2-core CPU (549 steps), so a rerun gives a comparable,
not bit-identical, checkpoint; b and c are scheduled by step count.

1. Builds the demo's task suite (demo.yaml: n and seed) and runs the demo's expert through the
   agent loop on every TRAIN task (and on the held-out tasks, only to measure held-out step
   similarity at the end: those are never trained on). Expert patches are graded by the harness.
   For diversity (so the model copies paths and names from the prompt instead of memorising a
   few repositories), `--extra-suites K` adds the train splits of K more suites (seeds
   --extra-seed, +1, ...), minus every task in a repository that holds a held-out task of the
   demo suite: held-out repositories and families stay unseen. Same expert, same code path.
2. Trains a byte-level BPE tokenizer (1k) on the train step conversations and builds a tiny
   Qwen2 (`swesrl.training.tiny.build_tiny_model`; shipped: 128 hidden, 4 layers, ~1M parameters).
3. Supervised next-token training on the train step instances (the paper's SRL context: task +
   last 2 steps -> the expert's `<think>` + action), loss on the reply (and 0.1x on the prompt),
   AdamW, warm-up then cosine over the budget (wall clock or --steps), batches of 8. This is its own
   loop, not `swesrl.training.sft` (TRL's SFTTrainer, which the demo's warm-up uses): it weights the
   prompt tokens (--prompt-weight; TRL's completion mask is 0 or 1) and re-augments every row each time
   it is drawn, and it is the recorded recipe of the shipped weights.
4. Saves the model and tokenizer (fp32, < 5 MB) plus `pretrain.json` (settings, steps, losses,
   held-out greedy step similarity).

The demo then continues from this checkpoint (a short SFT warm-up, then SRL) and evaluates it
before and after each stage, so every number in its report is measured from this starting point.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from swesrl.agent.models import HFModel, load_pretrained  # noqa: E402
from swesrl.config import load_config  # noqa: E402
from swesrl.demo import DemoConfig, prepare  # noqa: E402
from swesrl.harness import evaluate  # noqa: E402
from swesrl.tasks.augment import rename_names  # noqa: E402
from swesrl.training.evaluate import greedy_actions  # noqa: E402
from swesrl.training.rewards import srl_reward  # noqa: E402
from swesrl.training.tiny import SHIPPED_CHECKPOINT  # noqa: E402
from swesrl.utils import atomic_write_json, iter_jsonl, setup_logging  # noqa: E402

log = logging.getLogger("pretrain_tiny")


def graded(demo) -> dict:
    """Expert patches graded by the harness: resolved count per split."""
    result = {}
    for name, insts in (("train", demo.train), ("test", demo.test)):
        trajs = list(iter_jsonl(demo.out / "expert" / f"{name}.jsonl"))
        preds = [{"instance_id": t["instance_id"], "model_name_or_path": "short-expert",
                  "model_patch": t["info"].get("submission") or ""} for t in trajs]  # fmt: skip
        summary = evaluate(insts, preds, demo.out / "expert" / "graded", name, backend="local",
                           workers=demo.cfg.workers, timeout=120, mirror=demo.mirror)  # fmt: skip
        result[name] = summary["resolved_instances"]
    return result


def sft_messages(row: dict) -> list[dict]:
    """The conversation of a step row (prompt + completion)."""
    return row["prompt"] + row["completion"]


def encode(
    tok, messages: list[dict], max_len: int, prompt_weight: float = 0.1
) -> tuple[list[int], list[float]]:
    full = tok.apply_chat_template(messages, tokenize=False)
    prompt = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    ids = tok(full, add_special_tokens=False)["input_ids"]
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    weights = [prompt_weight] * n_prompt + [1.0] * (len(ids) - n_prompt)
    if len(ids) > max_len:  # keep the reply; drop the start of the prompt
        ids, weights = ids[-max_len:], weights[-max_len:]
    return ids, weights


def short_context(messages: list[dict]) -> list[dict]:
    """System prompt + the last two turns before the reply + the reply: the copy source stays, the rest goes."""
    return [messages[0], *messages[-3:]] if len(messages) > 4 else messages


def batches(data: list, batch_size: int, rng: random.Random):
    while True:
        order = list(range(len(data)))
        rng.shuffle(order)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            yield [data[j] for j in order[i : i + batch_size]]


def greedy_similarity(model, tok, rows: list[dict], max_new_tokens: int = 160) -> dict:
    outs = greedy_actions(HFModel.wrap(model, tok, max_new_tokens=max_new_tokens), rows, {"temperature": 0})
    model.train()
    rewards = srl_reward(outs, [r["expert_action"] for r in rows])
    by_step: dict[int, list[float]] = {}
    for r, w in zip(rows, rewards, strict=True):
        by_step.setdefault(r["step"], []).append(w)
    return {
        "n": len(rows),
        "step_similarity": round(sum(rewards) / max(len(rewards), 1), 4),
        "exact": round(sum(w == 1.0 for w in rewards) / max(len(rewards), 1), 4),
        "by_step": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_step.items())},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=12.0, help="Wall-clock training budget.")
    ap.add_argument("--steps", type=int, default=0, help="Train this many steps instead (schedule by step).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/pretrain_tiny", help="Work folder (suite, trajectories, data).")
    ap.add_argument("--dest", default=str(SHIPPED_CHECKPOINT), help="Where the checkpoint goes.")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=768)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-rows", type=int, default=48, help="Held-out step instances for the final check.")
    ap.add_argument(
        "--extra-suites",
        type=int,
        default=0,
        help="Extra suites (seeds --extra-seed, +1, ...) whose train tasks are added (held-out repos dropped).",
    )
    ap.add_argument("--extra-seed", type=int, default=1000, help="Seed of the first extra suite.")
    ap.add_argument("--workers", type=int, default=0, help="Parallel expert runs (0: demo.yaml's).")
    ap.add_argument(
        "--rename",
        type=float,
        default=0.0,
        help="Probability that an extra-suite conversation gets fresh repository/package/function names.",
    )
    ap.add_argument(
        "--short-context",
        type=float,
        default=0.0,
        help="Probability that a training row keeps only the system prompt and the last two turns "
        "(a copy curriculum: the name to copy is close, the row is short).",
    )
    ap.add_argument("--prompt-weight", type=float, default=0.1, help="Loss weight of prompt tokens.")
    ap.add_argument(
        "--init",
        default="",
        help="Continue from this checkpoint (its tokenizer and weights) instead of a fresh model.",
    )
    ap.add_argument(
        "--no-demo-train",
        action="store_true",
        help="Train on the extra suites only: the demo suite (train split included) stays unseen.",
    )
    args = ap.parse_args()
    setup_logging()
    from swesrl.utils import choose_omp_wait_policy

    choose_omp_wait_policy()  # before torch loads

    import torch

    from swesrl.training.tiny import build_tiny_model

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    cfg = load_config(DemoConfig, ["demo.yaml"])
    cfg.suite.train_tasks = cfg.suite.n
    cfg.suite.test_tasks = cfg.suite.n
    cfg.expert_recovery = 0.0  # the shipped checkpoint's data: experts without wrong edits
    if args.workers:
        cfg.workers = args.workers
    demo = prepare(work, cfg)  # the demo's stages 1-3: suite, expert trajectories, step data
    suite, expert, data = demo.suite_result, demo.expert, demo.data_result
    expert_resolved = demo.pipe.stage("graded", lambda: graded(demo))

    train_rows = [] if args.no_demo_train else list(iter_jsonl(work / "data" / "train" / "sft_steps.jsonl"))
    banned = frozenset(i["repo"] for i in demo.test)
    extra: dict[str, dict] = {}
    for s in range(args.extra_seed, args.extra_seed + args.extra_suites):
        ecfg = cfg.model_copy(deep=True)
        ecfg.suite.seed = s
        ecfg.suite.test_tasks = 0
        # another seed's suite, for diversity: its train split minus the demo's held-out repositories
        ex = prepare((work / "extra" / f"seed{s}").resolve(), ecfg, exclude_repos=banned)
        e, d = ex.expert, ex.data_result
        train_rows += [
            {**r, "extra": True} for r in iter_jsonl(ex.out / "data" / "train" / "sft_steps.jsonl")
        ]
        extra[str(s)] = {
            "tasks": e["train"]["trajectories"],
            "submitted": e["train"]["submitted"],
            "sft_steps": d["train"]["sft_steps"],
            "seconds": round(e["_seconds"] + d["_seconds"], 1),
        }
        log.info("extra suite %d: %s; %d train rows in all", s, extra[str(s)], len(train_rows))
    test_rows = list(iter_jsonl(work / "data" / "test" / "srl.jsonl"))
    model_dir = work / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    if args.init:
        shutil.copytree(args.init, model_dir)
    else:
        texts = [
            "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in sft_messages(r))
            for r in train_rows
        ]
        build_tiny_model(
            model_dir,
            texts=texts,
            seed=args.seed,
            hidden_size=args.hidden,
            num_layers=args.layers,
            intermediate_size=3 * args.hidden,
            max_position_embeddings=2048,
        )
    model, tok = load_pretrained(str(model_dir), "float32")
    n_params = sum(p.numel() for p in model.parameters())
    aug_rng = random.Random(args.seed + 7919)
    banned_names = {b.split("/")[-1] for b in banned}  # held-out repository names never appear
    counts = {"renamed": 0, "short": 0, "rows": 0}

    def encode_drawn(row: dict) -> tuple[list[int], list[float]]:
        """Encode one row, freshly augmented each time it is drawn (new names every epoch)."""
        msgs = sft_messages(row)
        if row.get("extra") and aug_rng.random() < args.rename:
            msgs = rename_names(msgs, aug_rng, avoid=banned_names)
            counts["renamed"] += 1
        if aug_rng.random() < args.short_context:
            msgs = short_context(msgs)
            counts["short"] += 1
        counts["rows"] += 1
        return encode(tok, msgs, args.max_len, args.prompt_weight)

    log.info("%d params; %d train rows", n_params, len(train_rows))

    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.95))
    budget = args.minutes * 60
    warmup = 30
    model.train()
    t0 = time.monotonic()
    step, losses = 0, []
    for rows in batches(train_rows, args.batch_size, rng):
        batch = [encode_drawn(r) for r in rows]
        frac = step / args.steps if args.steps else (time.monotonic() - t0) / budget
        if frac >= 1:
            break
        lr = args.lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id)
        w = torch.zeros((len(batch), width))
        for i, (x, ww) in enumerate(batch):
            ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
            w[i, : len(ww)] = torch.tensor(ww)
        logits = model(input_ids=ids, attention_mask=(w > 0).long()).logits[:, :-1]
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), reduction="none"
        ).view(len(batch), -1)
        tw = w[:, 1:]
        loss = (nll * tw).sum() / tw.sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        reply = (nll.detach() * (tw == 1.0)).sum() / (tw == 1.0).sum()
        losses.append(round(reply.item(), 4))
        if step % 20 == 0:
            log.info(
                "step %d  %.0fs  lr %.2e  reply loss %.3f",
                step,
                time.monotonic() - t0,
                lr,
                sum(losses[-20:]) / 20,
            )
    train_seconds = time.monotonic() - t0
    dest = Path(args.dest)
    if dest.exists():
        shutil.rmtree(dest)
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    meta = {
        "script": "scripts/pretrain_tiny.py",
        "args": vars(args),
        "parameters": n_params,
        "suite": {k: suite[k] for k in ("n", "train_available", "test_available")},
        "expert": expert,
        "expert_resolved": expert_resolved,
        "data": data,
        "extra_suites": extra,
        "heldout_repos_excluded": sorted(banned),
        "train_rows": len(train_rows),
        "rows_drawn": counts,
        "init": (
            json.loads((Path(args.init) / "pretrain.json").read_text())
            if args.init and (Path(args.init) / "pretrain.json").is_file()
            else None
        ),
        "steps": step,
        "train_seconds": round(train_seconds, 1),
        "reply_loss_first": losses[:1],
        "reply_loss_last20": round(sum(losses[-20:]) / max(len(losses[-20:]), 1), 4),
        "trained_on": (
            "extra suites only (the demo suite, train and held-out, never seen)"
            if args.no_demo_train
            else "train split only (held-out families and repositories never seen)"
        ),
    }
    atomic_write_json(dest / "pretrain.json", meta)
    log.info("saved %s (%d steps in %.0fs); measuring held-out step similarity", dest, step, train_seconds)
    meta["heldout_step_similarity_greedy"] = greedy_similarity(model, tok, test_rows[: args.eval_rows])
    atomic_write_json(dest / "pretrain.json", meta)
    log.info("saved %s (%d steps in %.0fs)", dest, step, train_seconds)


if __name__ == "__main__":
    main()
