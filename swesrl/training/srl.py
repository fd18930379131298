"""SRL: GRPO on step-wise expert instances with the similarity reward and dynamic sampling.

The algorithm (Deng et al. 2025), read top to bottom:
1. Each row of `srl.jsonl` is one expert step: `prompt` (task + the last k expert steps) and
   `expert_action`. For each of B prompts the policy samples G completions (`<think>...</think>`
   then one action) at temperature 1.0.
2. Reward: `swesrl.training.rewards.srl_reward` (2M/T of the action vs the expert's; -1 on a
   format failure).
3. Dynamic sampling: a prompt is kept only if the std of its G rewards is > epsilon; the batch
   is refilled with fresh prompts until B are kept or `max_rounds` generation rounds are spent
   (then the step is filled with filtered groups, whose advantages are zero, or stops).
4. GRPO update (TRL's loss; group-normalised advantages, clipped ratio, KL coefficient 0 as in
   the paper, max grad norm 1.0).

Engine: TRL's `GRPOTrainer` (pinned 1.16.0), so generation through vLLM (server / colocate),
DeepSpeed ZeRO-3 / FSDP via `accelerate launch`, checkpoints and resume, TensorBoard / W&B are
TRL's and transformers'. The one extension is `SRLTrainer._generate_and_score_completions`
(TRL's generate-then-score seam, also its refill point): it runs TRL's own generation and
scoring once per round and keeps the groups that pass the filter.

Several processes (DDP / ZeRO-3 / FSDP): TRL gathers every completion's reward to every process,
so each process computes the same global keep mask and takes the same decisions (rounds, refill
sizes, errors), which keeps the collective calls inside generation and scoring in lockstep. Each
process holds B/P whole groups (prompts_per_step must be a multiple of the number of processes);
refill prompts come from one seeded draw shared by all processes, each taking its own slice. The
step uses the globally first B kept groups (round, process, group order), exactly as one process
would; groups kept on a process beyond its B/P move to processes that are short (one all-gather
of the moved rows), so every process ends with the same batch shape.
"""

from __future__ import annotations

import logging
import os
import random
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from swesrl.agent.models import load_pretrained
from swesrl.config import StrictModel, load_config
from swesrl.training.context import chat_tokens, context_length, fit_context
from swesrl.training.exec_reward import ExecutionConfig, ExecutionScorer, execution_reward
from swesrl.training.logps import left_align, scored_positions_only, to_completion_columns
from swesrl.training.progress import OnStep, train_and_save
from swesrl.training.rewards import FORMAT_FAILURE, srl_reward
from swesrl.utils import UserError, iter_jsonl

log = logging.getLogger(__name__)


class ModelConfig(StrictModel):
    path: str
    """Local folder or Hub name of the policy (a causal LM with a chat template)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights dtype when loading."""
    attn_implementation: str | None = None
    """e.g. `flash_attention_2` or `sdpa`; None lets transformers choose."""
    gradient_checkpointing: bool = False
    """Trade compute for memory on large models."""


class DataConfig(StrictModel):
    path: str
    """`srl.jsonl` from `swesrl data build` (rows: prompt messages + expert_action)."""
    limit: int | None = None
    """Use only the first N rows (smoke tests)."""
    too_long: Literal["drop", "error"] = "drop"
    """Rows whose prompt plus `max_completion_length` exceed the model's context: dropped with
    one warning, or refused (`training/context.py`)."""


class RewardConfig(StrictModel):
    compare: Literal["text", "call", "canonical", "execution", "mixed"] = "text"
    """What is compared: the text after </think> (paper), the call only, canonical calls, the
    effects of both actions run on the step's sandbox state (`execution`, needs data built with
    `--with-state`: each row's `state` column; `training/exec_reward.py`), or `mixed`: text_weight * text + the rest * execution."""
    require_think: bool = True
    """A completion without a closed </think> is a format failure (reward -1)."""
    text_weight: float = Field(0.5, ge=0, le=1)
    """`mixed`: the weight of the text similarity (the execution reward gets 1 - text_weight)."""
    execution: ExecutionConfig = ExecutionConfig()
    """`execution` / `mixed`: the instances, sandboxes and limits (the states come with the rows of `data.path`)."""


class DynamicSamplingConfig(StrictModel):
    enabled: bool = True
    """Keep a prompt only if the std of its G rewards > epsilon and refill the batch (paper)."""
    epsilon: float = 1e-6
    """Std threshold below which a group counts as all-equal."""
    max_rounds: int = Field(4, ge=1)
    """Generation rounds per step, the first included, before giving up on filling the batch."""
    on_exhausted: Literal["fill", "stop"] = "fill"
    """After max_rounds with fewer than B kept: fill with filtered groups (zero advantage) or stop.
    A step where no prompt at all had signal always stops, with a message saying why."""


class TrainConfig(StrictModel):
    prompts_per_step: int = Field(512, ge=1)
    """B: prompts per optimizer step (paper: 512 for SRL)."""
    num_generations: int = Field(8, ge=2)
    """G: rollouts per prompt (paper: 8)."""
    micro_batch_size: int = Field(8, ge=1)
    """Completions per device per forward/backward pass; gradient accumulation makes up B*G."""
    learning_rate: float = 5e-7
    """Paper: 5e-7."""
    lr_scheduler_type: str = "constant"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    max_steps: int = -1
    """Optimizer steps; -1 runs num_epochs over the data."""
    num_epochs: float = 1.0
    temperature: float = 1.0
    """Sampling temperature (paper: 1.0)."""
    top_p: float = 1.0
    max_completion_length: int = 1024
    """Tokens per completion (monologue + action)."""
    beta: float = 0.0
    """KL coefficient (paper: 0)."""
    max_grad_norm: float = 1.0
    clip_epsilon: float = 0.2
    """PPO-style ratio clip."""
    loss_type: str = "dapo"
    """TRL loss aggregation: dapo, grpo, dr_grpo, bnpo."""
    scale_rewards: Literal["group", "none"] = "group"
    """Divide advantages by the group's std (GRPO) or not (Dr. GRPO)."""
    num_iterations: int = 1
    """Updates per generation batch (mu)."""
    bf16: bool = False
    """bf16 mixed precision (paper: on)."""
    seed: int = 0
    weight_decay: float = 0.0


class GenerationConfig(StrictModel):
    use_vllm: bool = False
    """Generate with vLLM (`pip install swe-srl[vllm]`)."""
    vllm_mode: Literal["server", "colocate"] = "server"
    """server: a separate `trl vllm-serve` process; colocate: vLLM inside each training process."""
    vllm_server_host: str = "0.0.0.0"
    vllm_server_port: int = 8000
    vllm_gpu_memory_utilization: float = 0.3
    """Colocate mode: share of GPU memory vLLM may take."""
    vllm_tensor_parallel_size: int = 1


class OutputConfig(StrictModel):
    dir: str = "runs/srl"
    """Checkpoints, TensorBoard logs, metrics.jsonl, plots and the final model."""
    save_steps: int = 50
    save_total_limit: int | None = 3
    logging_steps: int = 1
    report_to: list[str] = ["tensorboard"]
    """tensorboard, wandb, or none."""
    resume: bool = True
    """Continue from the newest checkpoint in `dir` if there is one."""
    plots: bool = True
    """Write PNG reward curves at the end."""


class SRLConfig(StrictModel):
    model: ModelConfig
    data: DataConfig
    reward: RewardConfig = RewardConfig()
    dynamic_sampling: DynamicSamplingConfig = DynamicSamplingConfig()
    train: TrainConfig = TrainConfig()
    generation: GenerationConfig = GenerationConfig()
    output: OutputConfig = OutputConfig()


class DynamicSamplingExhausted(UserError):
    """No prompt of a step had reward variance: GRPO has nothing to learn from."""


# ---------------------------------------------------------------------------------------------


def load_srl_dataset(path: str | Path, limit: int | None = None):
    """`srl.jsonl` as a `datasets.Dataset` with `prompt` (messages), `expert_action`, `instance_id`,
    `step` columns, and `state` ({patch, final_patch}, None where a row has none) when rows carry
    one (`swesrl data build --with-state`): TRL hands every column to the reward function, so the
    execution reward reads each row's state from here, the one source."""
    from datasets import Dataset

    p = Path(path)
    if not p.is_file():
        raise UserError(f"SRL data not found: {p}")
    rows = []
    for i, row in enumerate(iter_jsonl(p), 1):
        for key, kind in (("prompt", list), ("expert_action", str)):
            if not isinstance(row.get(key), kind):
                raise UserError(f"{p}:{i}: missing or invalid `{key}` (expected {kind.__name__})")
        st = row.get("state")
        rows.append(
            {
                "prompt": [{"role": m["role"], "content": m["content"]} for m in row["prompt"]],
                "expert_action": row["expert_action"],
                "instance_id": str(row.get("instance_id", "")),
                "step": int(row.get("step", 0)),
                "state": {"patch": st["patch"], "final_patch": str(st.get("final_patch") or "")}
                if isinstance(st, dict) and isinstance(st.get("patch"), str)
                else None,
            }
        )
        if limit and len(rows) >= limit:
            break
    if not rows:
        raise UserError(f"{p}: no rows")
    if all(r["state"] is None for r in rows):
        for r in rows:
            del r["state"]
    return Dataset.from_list(rows)


def load_policy(cfg: ModelConfig):
    """(model, tokenizer) of the policy (`agent.models.load_pretrained`, the one loader)."""
    return load_pretrained(cfg.path, cfg.dtype, cfg.attn_implementation)


def make_reward_func(cfg: RewardConfig):
    """The reward function TRL calls (its signature: completions plus the dataset's columns). With
    `execution` / `mixed` it owns a pool of warm sandboxes: `func.close()` closes them (also done at exit)."""
    scorer = ExecutionScorer(cfg.execution) if cfg.compare in ("execution", "mixed") else None

    def srl_similarity(completions, expert_action, log_metric=None, **kw):
        if scorer is None:
            rewards = srl_reward(
                completions, expert_action, compare=cfg.compare, require_think=cfg.require_think
            )
        else:
            rewards = execution_reward(
                completions,
                expert_action,
                scorer,
                mode=cfg.compare,
                text_weight=cfg.text_weight,
                require_think=cfg.require_think,
                instance_id=kw.get("instance_id"),
                state=kw.get("state"),
            )
            if log_metric is not None:
                for name, value in scorer.last.metrics().items():
                    log_metric(name, value)
        if log_metric is not None and rewards:
            log_metric("format_failure_rate", sum(r == FORMAT_FAILURE for r in rewards) / len(rewards))
        if rewards and all(r == FORMAT_FAILURE for r in rewards):
            log.warning(
                "every one of %d completions failed the format (reward -1, no gradient): check that "
                "prompts fit the context and that the model writes <think>...</think> then one call",
                len(rewards),
            )
        return rewards

    srl_similarity.close = scorer.close if scorer is not None else (lambda: None)
    srl_similarity.scorer = scorer
    return srl_similarity


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def grpo_args(cfg: SRLConfig):
    from trl import GRPOConfig

    t, g, o = cfg.train, cfg.generation, cfg.output
    completions = t.prompts_per_step * t.num_generations
    per_pass = t.micro_batch_size * world_size()
    if completions % per_pass:
        raise UserError(
            f"prompts_per_step*num_generations ({completions}) must be a multiple of "
            f"micro_batch_size*world_size ({per_pass})"
        )
    if cfg.dynamic_sampling.enabled and t.prompts_per_step % world_size():
        raise UserError(
            f"dynamic sampling on {world_size()} processes needs prompts_per_step ({t.prompts_per_step}) "
            "to be a multiple of the number of processes, so that each group of rollouts lives on one process"
        )
    report_to = [r for r in o.report_to if r != "none"]
    return GRPOConfig(
        output_dir=o.dir,
        per_device_train_batch_size=t.micro_batch_size,
        gradient_accumulation_steps=completions // per_pass,
        num_generations=t.num_generations,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_ratio,
        max_steps=t.max_steps,
        num_train_epochs=t.num_epochs,
        temperature=t.temperature,
        top_p=t.top_p,
        max_completion_length=t.max_completion_length,
        beta=t.beta,
        max_grad_norm=t.max_grad_norm,
        epsilon=t.clip_epsilon,
        loss_type=t.loss_type,
        scale_rewards=t.scale_rewards,
        num_iterations=t.num_iterations,
        bf16=t.bf16,
        seed=t.seed,
        weight_decay=t.weight_decay,
        gradient_checkpointing=cfg.model.gradient_checkpointing,
        use_vllm=g.use_vllm,
        vllm_mode=g.vllm_mode,
        vllm_server_host=g.vllm_server_host,
        vllm_server_port=g.vllm_server_port,
        vllm_gpu_memory_utilization=g.vllm_gpu_memory_utilization,
        vllm_tensor_parallel_size=g.vllm_tensor_parallel_size,
        save_steps=o.save_steps,
        save_total_limit=o.save_total_limit,
        logging_steps=o.logging_steps,
        report_to=report_to or "none",
        remove_unused_columns=False,
        log_completions=False,
        disable_tqdm=True,
        dataloader_pin_memory=_cuda(),
    )


def make_trainer_class():
    """SRLTrainer is built lazily so that importing this module does not import TRL."""
    import torch
    from trl import GRPOTrainer

    from swesrl.training.grpo import assign_groups, dynamic_sampling_mask, group_transfers, refill_size

    left_pad = {"prompt_ids", "prompt_mask"}
    right_pad = {
        "completion_ids",
        "completion_mask",
        "old_per_token_logps",
        "ref_per_token_logps",
        "sampling_per_token_logps",
        "importance_sampling_ratio",
        "tool_mask",
    }

    def group_rows(group: int, G: int) -> torch.Tensor:
        return torch.arange(group * G, (group + 1) * G)

    def select_rows(out: dict, rows: torch.Tensor) -> dict:
        return {
            k: (v[rows.to(v.device)] if isinstance(v, torch.Tensor) and v.dim() > 0 else v)
            for k, v in out.items()
        }

    def pad_value(key: str, pad_id: int) -> int:
        return pad_id if key.endswith("_ids") else (1 if key == "tool_mask" else 0)

    def row_fields(batch: dict) -> list[str]:
        """The per-row tensor fields of a batch, in a fixed order (collectives run in this order)."""
        keys = []
        for key in sorted(batch):
            value = batch[key]
            if key == "num_items_in_batch" or not isinstance(value, torch.Tensor) or value.dim() == 0:
                continue
            if value.dim() > 1 and key not in left_pad and key not in right_pad:
                raise UserError(f"dynamic sampling cannot merge the batch field {key!r} (multimodal inputs?)")
            keys.append(key)
        return keys

    def concat(parts: list[dict], pad_id: int) -> dict:
        from trl.trainer.utils import pad

        merged = dict(parts[0])
        for key in row_fields(parts[0]):
            tensors = [t for p in parts for t in p[key]]
            if parts[0][key].dim() == 1:
                merged[key] = torch.stack(tensors)
            else:
                side = "left" if key in left_pad else "right"
                merged[key] = pad(tensors, padding_value=pad_value(key, pad_id), padding_side=side)
        return merged

    class SRLTrainer(GRPOTrainer):
        """GRPOTrainer plus the paper's dynamic sampling (filter + refill)."""

        stop_without_signal = True
        """A step where no group has reward variance stops (SRL); False trains on zero-advantage groups."""

        def __init__(self, *args, dynamic_sampling: DynamicSamplingConfig | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.ds = dynamic_sampling or DynamicSamplingConfig(enabled=False)
            self._refill_rng = random.Random(self.args.seed)
            self._last_rewards: torch.Tensor | None = None
            per_process = self.args.generation_batch_size // self.accelerator.num_processes
            if self.ds.enabled and per_process % self.num_generations:
                raise UserError(
                    f"dynamic sampling needs whole groups on each process: {per_process} completions per "
                    f"process is not a multiple of num_generations ({self.num_generations}); make "
                    "prompts_per_step a multiple of the number of processes"
                )

        def _get_per_token_logps_and_entropies(
            self,
            model,
            input_ids,
            attention_mask,
            logits_to_keep,
            batch_size=None,
            compute_entropy=False,
            compute_aux_loss=False,
            **multimodal,
        ):
            """TRL's log-probs (and entropies) of the completion tokens, computed without a padding mask
            (`training/logps.py`): each row's tokens moved to its start, the model on its causal kernel.
            Multimodal inputs, MoE aux losses and rows with gaps in their mask go TRL's way."""
            aligned = None
            if not compute_aux_loss and all(v is None for v in multimodal.values()):
                aligned = left_align(input_ids, attention_mask, input_ids.size(1) - logits_to_keep)
            if aligned is None:
                return super()._get_per_token_logps_and_entropies(
                    model,
                    input_ids,
                    attention_mask,
                    logits_to_keep,
                    batch_size,
                    compute_entropy,
                    compute_aux_loss,
                    **multimodal,
                )
            ids, labels, shift = aligned
            width, rows = input_ids.size(1), input_ids.size(0)
            completion_mask = attention_mask[:, -logits_to_keep:]
            logps, entropies = [], []
            for start in range(0, rows, batch_size or rows):
                part = slice(start, start + (batch_size or rows))
                with self.accelerator.autocast(), scored_positions_only():
                    out = model(input_ids=ids[part], labels=labels[part], fused_lm_head=True)
                keep = (out.log_probs, shift[part], width, logits_to_keep, completion_mask[part])
                logps.append(to_completion_columns(*keep))
                if compute_entropy:
                    entropies.append(to_completion_columns(out.entropy, *keep[1:]))
            return torch.cat(logps), torch.cat(entropies) if compute_entropy else None, None

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            weights = self.reward_weights.to(rewards_per_func.device).unsqueeze(0)
            self._last_rewards = (rewards_per_func * weights).nansum(dim=1)  # (N*G,) all processes
            return rewards_per_func

        def _scored_round(self, inputs):
            start = time.perf_counter()
            out = super()._generate_and_score_completions(inputs)
            n_tokens = self.accelerator.gather(out["completion_mask"].sum()).sum().item()
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["tokens_per_second"].append(n_tokens / max(time.perf_counter() - start, 1e-9))
            keep = dynamic_sampling_mask(self._last_rewards, self.num_generations, self.ds.epsilon)
            return out, keep

        def _refill_inputs(self, n_prompts: int) -> list[dict]:
            """n_prompts fresh prompts (x G rows) for this process: one draw of n_prompts per process from
            the shared seeded rng, the same on every process, of which each takes its own slice."""
            ds, n_proc = self.train_dataset, self.accelerator.num_processes
            idx = [self._refill_rng.randrange(len(ds)) for _ in range(n_prompts * n_proc)]
            mine = idx[self.accelerator.process_index * n_prompts :][:n_prompts]
            return [dict(ds[i]) for i in mine for _ in range(self.num_generations)]

        def _exchange(self, parts: list[dict], sends: list[list[tuple[int, int]]], G: int) -> dict:
            """All-gather the groups that change process: (P * max_sent * G, ...) per row field."""
            acc = self.accelerator
            width = max(len(s) for s in sends)
            mine = sends[acc.process_index] or [(0, 0)]  # a process with nothing to send pads with a group
            mine = mine + [mine[0]] * (width - len(mine))
            pad_id = self._tokenizer.pad_token_id
            batch = concat([select_rows(parts[r], group_rows(g, G)) for r, g in mine], pad_id)
            moved = {}
            for key in row_fields(batch):
                value = batch[key].contiguous()
                if value.dim() > 1:
                    value = acc.pad_across_processes(
                        value, dim=1, pad_index=pad_value(key, pad_id), pad_first=key in left_pad
                    )
                moved[key] = acc.gather(value)
            return moved

        def _generate_and_score_completions(self, inputs):
            mode = "train" if self.model.training else "eval"
            G = self.num_generations if mode == "train" else self.num_generations_eval
            out, keep = self._scored_round(inputs)
            if mode != "train" or not self.ds.enabled:
                return out
            n_proc, rank = self.accelerator.num_processes, self.accelerator.process_index
            per_process = len(inputs) // G  # whole groups per process (checked in __init__)
            target = per_process * n_proc  # B
            if bool(keep.all()):
                self._metrics[mode]["dynamic_sampling/filtered_fraction"].append(0.0)
                self._metrics[mode]["dynamic_sampling/rounds"].append(1)
                self._metrics[mode]["dynamic_sampling/kept_prompts"].append(target)
                return out
            # Every decision below depends only on `keep`, computed from rewards gathered from all
            # processes, so all processes run the same rounds and collectives.
            parts, keeps = [], []
            n_kept = n_seen = rounds = 0
            while True:
                rounds += 1
                n_seen += keep.numel()
                parts.append(out)
                keeps.append(keep.view(n_proc, -1).cpu())  # (P, n): TRL gathers process-major
                n_kept += int(keep.sum())
                if n_kept >= target or rounds >= self.ds.max_rounds:
                    break
                n_new = refill_size(n_kept, n_seen, target, n_proc)
                out, keep = self._scored_round(self._refill_inputs(n_new))
            self._metrics[mode]["dynamic_sampling/filtered_fraction"].append(1 - n_kept / n_seen)
            self._metrics[mode]["dynamic_sampling/rounds"].append(rounds)
            self._metrics[mode]["dynamic_sampling/kept_prompts"].append(min(n_kept, target))
            if n_kept == 0 and self.stop_without_signal:
                raise DynamicSamplingExhausted(
                    f"dynamic sampling: all {n_seen} prompts sampled in {rounds} rounds had equal rewards "
                    f"for their {G} rollouts (std <= {self.ds.epsilon}), so GRPO has no signal; "
                    "e.g. every completion failed the format (-1): warm the model up with SFT, raise "
                    "train.temperature, or check the reward settings"
                )
            if n_kept < target:
                if self.ds.on_exhausted == "stop":
                    raise DynamicSamplingExhausted(
                        f"dynamic sampling: only {n_kept}/{target} prompts had reward variance after "
                        f"{rounds} rounds (set dynamic_sampling.on_exhausted=fill to train on them anyway)"
                    )
                log.warning(
                    "dynamic sampling: %d/%d prompts kept after %d rounds; filling with zero-advantage groups",
                    n_kept,
                    target,
                    rounds,
                )
            plan = assign_groups(keeps, per_process)  # (P, B/P, 3): (round, process, group) per slot
            sends, receives = group_transfers(plan)
            moved = self._exchange(parts, sends, G) if any(sends) else {}
            if n_proc > 1:
                self._metrics[mode]["dynamic_sampling/moved_prompts"].append(sum(map(len, sends)))
            width = max(map(len, sends))
            groups = []
            for slot, (r, p, g) in enumerate(plan[rank].tolist()):
                if p == rank:
                    groups.append(select_rows(parts[r], group_rows(g, G)))
                else:
                    q, i = receives[(rank, slot)]
                    groups.append(select_rows(moved, group_rows(q * width + i, G)))
            merged = concat(groups, self._tokenizer.pad_token_id)
            loss_mask = merged["completion_mask"] * merged.get("tool_mask", 1)
            merged["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
            return merged

    return SRLTrainer


def train_srl(cfg: SRLConfig, on_step: OnStep | None = None) -> dict:
    """Run SRL; return a summary (final step, last metrics, output folder). `on_step(step, max_steps,
    metrics)` is called for every logged step (the trainer itself prints nothing)."""
    from swesrl.training.plots import MetricsFileCallback

    dataset = load_srl_dataset(cfg.data.path, cfg.data.limit)
    if cfg.reward.compare in ("execution", "mixed") and "state" not in dataset.column_names:
        raise UserError(
            f"reward.compare={cfg.reward.compare}: no row of {cfg.data.path} carries a `state`: "
            "build it with `swesrl data build --with-state`"
        )
    model, tokenizer = load_policy(cfg.model)
    dataset = fit_context(
        dataset,
        lambda row: chat_tokens(tokenizer, row["prompt"], add_generation_prompt=True),
        context_length(model),
        cfg.train.max_completion_length,
        "SRL",
        cfg.data.too_long,
    )
    args = grpo_args(cfg)
    out_dir = Path(cfg.output.dir)
    trainer = make_trainer_class()(
        model=model,
        reward_funcs=[make_reward_func(cfg.reward)],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        dynamic_sampling=cfg.dynamic_sampling,
        callbacks=[MetricsFileCallback(out_dir / "metrics.jsonl")],
    )
    summary = train_and_save(trainer, tokenizer, out_dir, cfg.output.resume, cfg.output.plots, on_step)
    history = summary.pop("log_history")
    summary["metrics"] = next((h for h in reversed(history) if "reward" in h), {})
    return summary


def load_srl_config(config: str, overrides: list[str] | None = None) -> SRLConfig:
    return load_config(SRLConfig, [config, *(overrides or [])])
