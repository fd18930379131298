"""The RLVR loop before issue 18 (swesrl/training/rlvr.py at 5c01b7c), kept only as bench/rlvr.py's baseline.

RLVR: GRPO on whole agent episodes in sandboxes, reward = resolved (1/0) from the harness.

Each step: B task instances, G episodes each. An episode is `swesrl.agent.loop.run_agent` with the
policy itself as the model (`PolicyModel`, in process, sampling at `temperature`) in a fresh
sandbox; its submission is graded by `swesrl.harness.grade_patch` in another fresh sandbox.
Rewards -> group advantages (`grpo.group_advantages`); groups whose G rewards are all equal carry
no signal and are filtered (`grpo.dynamic_sampling_mask`), refilled with fresh instances for up to
`max_rounds`. The loss is the clipped GRPO surrogate (`grpo.policy_loss`) over the policy's own
tokens only: every assistant turn becomes one sequence, its prompt exactly what the agent showed
the model at that turn (the context policy's view: task + last k steps, or the full history), the
prompt (system, task, observations) masked out and the reply trained with the episode's advantage.

Why a small loop here rather than TRL's GRPOTrainer: TRL's multi-turn support drives its own tool
calling format and environment protocol, while episodes here must run through this project's
agent loop (its prompts, context policy, limits and SWE-agent action format) and be graded by the
harness in a separate sandbox; one on-policy update per batch keeps the loop short. The math is
the same functions the SRL trainer's tests pin down.
"""

from __future__ import annotations

import logging
import math
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import Field

from swesrl.agent.context import select_context
from swesrl.agent.loop import run_agent
from swesrl.agent.models import STOP, cut_at_stop
from swesrl.agent.prompts import load_agent_config
from swesrl.config import StrictModel, load_config
from swesrl.core.instances import default_mirror, load_instances, select
from swesrl.envs import env_for_instance
from swesrl.envs.base import SandboxConfig
from swesrl.harness import grade_patch
from swesrl.training.srl import ModelConfig, load_policy
from swesrl.utils import UserError, append_jsonl, atomic_write_json, make_progress

log = logging.getLogger(__name__)


class RLVRDataConfig(StrictModel):
    instances: str
    """instances.jsonl of the tasks to train on (a bundled suite or SWE-bench-schema instances)."""
    mirror: str | None = None
    """Folder of repositories (default: `repos/` beside the instances file)."""
    ids: list[str] | None = None
    """Only these instance ids."""
    split: str | None = None
    """Only instances whose `split` field is this (e.g. train)."""
    limit: int | None = None


class RLVRTrainConfig(StrictModel):
    prompts_per_step: int = Field(128, ge=1)
    """B: task instances per step (paper: 128 for RLVR)."""
    num_generations: int = Field(8, ge=2)
    """G: episodes per instance."""
    micro_batch_size: int = Field(4, ge=1)
    """Turn sequences per forward/backward pass."""
    learning_rate: float = 5e-7
    max_steps: int = 10
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 1024
    """Tokens per agent turn."""
    clip_epsilon: float = 0.2
    beta: float = 0.0
    """KL coefficient (0: no reference model is kept)."""
    max_grad_norm: float = 1.0
    scale_rewards: bool = True
    """Divide advantages by the group's std (GRPO)."""
    epsilon: float = 1e-6
    """Dynamic sampling threshold on a group's reward std."""
    max_rounds: int = Field(2, ge=1)
    """Rollout rounds per step before training on what was kept."""
    workers: int = Field(1, ge=1)
    """Episodes run at once (threads; generation is batched by the lock in PolicyModel)."""
    seed: int = 0
    bf16: bool = False


class RLVROutputConfig(StrictModel):
    dir: str = "runs/rlvr"
    save_steps: int = 1
    resume: bool = True
    plots: bool = True


class RLVRConfig(StrictModel):
    model: ModelConfig
    data: RLVRDataConfig
    agent: list[str] = ["agent.yaml"]
    """Agent config sources (bundled names, paths, key=value overrides)."""
    sandbox: SandboxConfig = SandboxConfig()
    grade_timeout: float = 300.0
    train: RLVRTrainConfig = RLVRTrainConfig()
    output: RLVROutputConfig = RLVROutputConfig()


class PolicyModel:
    """The policy being trained as an agent `Model` (in process, no gradients, sampling)."""

    def __init__(self, model, tokenizer, max_new_tokens: int, temperature: float, top_p: float):
        import threading

        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.name = "policy"
        self._lock = threading.Lock()

    def count_tokens(self, messages: list[dict]) -> int:
        ids = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        return len(ids["input_ids"] if hasattr(ids, "keys") else ids)

    def generate(self, messages: list[dict], n: int = 1, **sampling: Any) -> list[str]:
        import torch

        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        ids = {k: v.to(self.model.device) for k, v in ids.items()}
        with self._lock, torch.no_grad():
            out = self.model.generate(
                **ids,
                max_new_tokens=self.max_new_tokens,
                do_sample=True,
                temperature=self.temperature,
                top_p=self.top_p,
                num_return_sequences=n,
                stop_strings=[STOP],
                tokenizer=self.tokenizer,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, ids["input_ids"].shape[1] :]
        return [cut_at_stop(t) for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]


def episode_turns(messages: list[dict], context) -> list[tuple[list[dict], str]]:
    """(what the model saw, what it replied) for every assistant turn of a trajectory."""

    return [
        (select_context(messages[:i], context), m["content"])
        for i, m in enumerate(messages)
        if m["role"] == "assistant"
    ]


def encode_turn(tokenizer, prompt: list[dict], reply: str) -> tuple[list[int], list[int]]:
    """Token ids of prompt + reply (+ end of turn) and the loss mask: 1 on the reply only."""
    p = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True)
    p = list(p["input_ids"] if hasattr(p, "keys") else p)
    r = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return p + r, [0] * len(p) + [1] * len(r)


def rollout_group(instance: dict, policy: PolicyModel, cfg: RLVRConfig, agent_cfg, mirror, g: int, pool):
    """G episodes of one instance, each graded; returns [(trajectory, reward)]."""

    def one(_):
        with env_for_instance(instance, cfg.sandbox, mirror) as env:
            traj = run_agent(instance, policy, env, agent_cfg)
        patch = traj["info"].get("submission") or ""
        report = grade_patch(instance, patch, cfg.sandbox, mirror, timeout=cfg.grade_timeout)
        return traj, float(bool(report.get("resolved")))

    return list(pool.map(one, range(g)))


def update_policy(model, tokenizer, opt, kept, context, t: RLVRTrainConfig, device: str) -> dict:
    """One on-policy GRPO update from (trajectory, reward, advantage) triples; only reply tokens train."""
    import torch

    from swesrl.training.grpo import gather_logps, policy_loss

    model.train()
    seqs = [
        (*encode_turn(tokenizer, p, reply), adv)
        for traj, _, adv in kept
        for p, reply in episode_turns(traj["messages"], context)
    ]
    n_tokens = sum(sum(m) for _, m, _ in seqs)
    opt.zero_grad()
    total_loss = 0.0
    pad = tokenizer.pad_token_id
    for i in range(0, len(seqs), t.micro_batch_size):
        mb = seqs[i : i + t.micro_batch_size]
        width = max(len(ids) for ids, _, _ in mb)
        ids = torch.tensor([x + [pad] * (width - len(x)) for x, _, _ in mb], device=device)  # (B, T)
        mask = torch.tensor([m + [0] * (width - len(m)) for _, m, _ in mb], device=device)  # (B, T)
        attn = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _, _ in mb], device=device)
        adv = torch.tensor([a for _, _, a in mb], device=device, dtype=torch.float32)  # (B,)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=t.bf16):
            logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1]  # (B, T-1, V)
        logps = gather_logps(logits, ids[:, 1:], t.temperature)  # (B, T-1)
        loss, _ = policy_loss(logps, logps.detach(), adv, mask[:, 1:], clip_eps=t.clip_epsilon)
        loss = loss * mask[:, 1:].sum() / max(n_tokens, 1)  # token-level mean over the whole step
        loss.backward()
        total_loss += loss.item()
    out = {"loss": total_loss, "trained_turns": len(seqs), "trained_tokens": n_tokens}
    if seqs:
        out["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), t.max_grad_norm))
        opt.step()
    else:
        log.warning("RLVR: every group had equal rewards; no update this step")
    return out


def load_rlvr_instances(d: RLVRDataConfig) -> tuple[list[dict], Path]:

    path = Path(d.instances)
    if not path.is_file():
        raise UserError(f"instances not found: {path}")
    insts = [dict(i) for i in load_instances(path)]
    if d.ids:
        insts = [dict(i) for i in select(insts, d.ids)]
    if d.split:
        insts = [i for i in insts if i.get("split") == d.split]
    insts = insts[: d.limit] if d.limit else insts
    if not insts:
        raise UserError(f"{path}: no instances selected")
    return insts, Path(d.mirror) if d.mirror else default_mirror(path)


def train_rlvr(cfg: RLVRConfig) -> dict:
    import torch

    from swesrl.training.grpo import dynamic_sampling_mask, group_advantages
    from swesrl.training.plots import plot_metrics

    t, out_dir = cfg.train, Path(cfg.output.dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    instances, mirror = load_rlvr_instances(cfg.data)
    agent_cfg = load_agent_config(cfg.agent)
    state_path = out_dir / "state.json"
    ckpt = out_dir / "checkpoint"
    step = 0
    if cfg.output.resume and (ckpt / "config.json").is_file() and state_path.is_file():
        import json

        step = json.loads(state_path.read_text())["step"]
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"path": str(ckpt)})})
        log.info("resuming RLVR from %s (step %d)", ckpt, step)
    model, tokenizer = load_policy(cfg.model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=t.learning_rate, weight_decay=0.0)
    if step and (out_dir / "optimizer.pt").is_file():
        opt.load_state_dict(torch.load(out_dir / "optimizer.pt", map_location=device))
    policy = PolicyModel(model, tokenizer, t.max_new_tokens, t.temperature, t.top_p)
    rng = random.Random(t.seed + step)
    G = t.num_generations
    pool = ThreadPoolExecutor(max_workers=t.workers)
    summary: dict[str, Any] = {}
    with make_progress() as progress:
        bar = progress.add_task("RLVR", total=t.max_steps, completed=step, status="")
        while step < t.max_steps:
            t0 = time.perf_counter()
            model.eval()
            kept: list[tuple[dict, float, float]] = []  # (trajectory, reward, advantage)
            n_seen, all_rewards = 0, []
            for _ in range(t.max_rounds):
                need = t.prompts_per_step - len(kept) // G
                for inst in rng.sample(instances, min(need, len(instances))):
                    group = rollout_group(inst, policy, cfg, agent_cfg, mirror, G, pool)
                    rewards = torch.tensor([r for _, r in group])  # (G,)
                    all_rewards += rewards.tolist()
                    n_seen += 1
                    if dynamic_sampling_mask(rewards, G, t.epsilon).item():
                        adv = group_advantages(rewards, G, scale=t.scale_rewards)
                        kept += [(tr, r, a) for (tr, r), a in zip(group, adv.tolist(), strict=True)]
                if len(kept) // G >= t.prompts_per_step:
                    break
            metrics = {
                "step": step + 1,
                "reward": sum(all_rewards) / len(all_rewards),
                "filtered_fraction": 1 - (len(kept) // G) / max(n_seen, 1),
                "episodes": len(all_rewards),
            }
            metrics.update(update_policy(model, tokenizer, opt, kept, agent_cfg.context, t, device))
            step += 1
            metrics["step_time"] = time.perf_counter() - t0
            append_jsonl(out_dir / "metrics.jsonl", metrics)
            if step % cfg.output.save_steps == 0 or step == t.max_steps:
                model.save_pretrained(ckpt)
                tokenizer.save_pretrained(ckpt)
                torch.save(opt.state_dict(), out_dir / "optimizer.pt")
                atomic_write_json(state_path, {"step": step})
            summary = metrics
            progress.update(bar, completed=step, status=f"reward {metrics['reward']:.2f}")
    pool.shutdown()
    final = out_dir / "final"
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    plots = plot_metrics(out_dir / "metrics.jsonl", out_dir / "plots") if cfg.output.plots else []
    if summary and not math.isfinite(summary["reward"]):
        raise UserError("RLVR produced a non-finite reward")
    return {
        "global_step": step,
        "final_model": str(final),
        "metrics": summary,
        "plots": [str(p) for p in plots],
    }


def load_rlvr_config(config: str, overrides: list[str] | None = None) -> RLVRConfig:
    return load_config(RLVRConfig, [config, *(overrides or [])])
