"""SFT: the paper's baseline, and the warm-up before SRL for models that cannot yet follow the format.

TRL's `SFTTrainer` on `sft.jsonl` (`{"messages": [...]}`, whole expert trajectories or steps) with
the loss on assistant turns only (`assistant_only_loss`, which needs a chat template with
`{% generation %}` markers: the tiny model's has them; for a model whose template lacks them,
set `train.assistant_only_loss=false` or supply a template). Paper settings (7B):
lr 5e-6, global batch 64, cosine schedule, warmup ratio 0.3, 3 epochs.

Which assistant turns get the loss (`train.loss_on`): a step row (an SRL prompt plus the expert's
reply, as the demo builds them) carries the earlier steps as context, rendered the way the agent
sees them, i.e. without their `<think>` blocks (`ContextPolicy.keep_thoughts=false`). Those turns
are not replies to imitate: TRL's `assistant_only_loss` alone trains on every assistant turn, so
on step rows most trained turns start with `<function=` instead of `<think>` and the model learns
to skip the monologue (the reward's format check then fails). `auto` (default) trains the final
reply and each earlier turn in the same form (with a `<think>` block when the final reply has
one); `all` trains every assistant turn; `last` only the final one. The rows are tokenized here
with the chat template's assistant mask (what TRL would compute), with the context turns cleared.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import Field

from swesrl.config import StrictModel, load_config
from swesrl.training.context import chat_tokens, context_length, fit_context
from swesrl.training.data.steps import assistant_turn
from swesrl.training.progress import OnStep, train_and_save
from swesrl.training.srl import ModelConfig, OutputConfig, _cuda, load_policy, world_size
from swesrl.utils import UserError, iter_jsonl

log = logging.getLogger(__name__)


class SFTDataConfig(StrictModel):
    path: str
    """`sft.jsonl` from `swesrl data build` (rows: {"messages": [...]}), or prompt-completion rows
    ({"prompt": [...], "completion": [assistant message]}, e.g. `step_rows`): the loss is then on the
    completion's tokens, everything after the prompt's generation prompt."""
    limit: int | None = None
    """Use only the first N rows."""
    order: Literal["epochs", "draws"] = "epochs"
    """`epochs`: shuffled passes over the rows; `draws`: every step draws `global_batch_size` distinct
    rows at random (`random.Random(train.seed).sample`), steps independent: a short warm-up on a
    small set (the demo's)."""
    too_long: Literal["drop", "error"] = "drop"
    """Rows longer than the model's context (or `train.max_length`): dropped with one warning, or
    refused (`training/context.py`); TRL would cut them, often through the reply."""


class SFTTrainConfig(StrictModel):
    learning_rate: float = 5e-6
    """Paper: 5e-6."""
    global_batch_size: int = Field(64, ge=1)
    """Sequences per optimizer step across all devices (paper: 64)."""
    micro_batch_size: int = Field(1, ge=1)
    """Sequences per device per forward/backward pass."""
    lr_scheduler_type: str = "cosine"
    """A transformers scheduler name, or `warmup_cosine`: a linear warm-up over the first
    `warmup_ratio` of the steps multiplied by a cosine decay that starts at step 0 (the demo's)."""
    warmup_ratio: float = Field(0.3, ge=0, lt=1)
    num_epochs: float = 3.0
    max_steps: int = -1
    max_length: int | None = 32768
    """Longer sequences are truncated."""
    assistant_only_loss: bool = True
    """Loss on assistant turns only."""
    loss_on: Literal["auto", "all", "last"] = "auto"
    """With `assistant_only_loss`, which assistant turns: `all`, the final one (`last`), or (`auto`) the
    final one plus earlier ones in the same form (a `<think>` block when the final has one); see above."""
    bf16: bool = False
    seed: int = 0
    optim: str = "adamw_torch"
    """transformers optimizer name."""
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0


class SFTOutputConfig(OutputConfig):
    """SRL's output settings with SFT's defaults (more steps per run, so rarer saves and logs)."""

    dir: str = "runs/sft"
    save_steps: int = 500
    save_total_limit: int | None = 2
    logging_steps: int = 10


class SFTConfig(StrictModel):
    model: ModelConfig
    data: SFTDataConfig
    train: SFTTrainConfig = SFTTrainConfig()
    output: SFTOutputConfig = SFTOutputConfig()


def _messages(value: object) -> list[dict] | None:
    if not isinstance(value, list) or not all(isinstance(m, dict) and "role" in m for m in value):
        return None
    return [{"role": m["role"], "content": str(m.get("content") or "")} for m in value]


def load_sft_dataset(path: str | Path, limit: int | None = None):
    """Rows of `{"messages": [...]}` or of `{"prompt": [...], "completion": [...]}` (one kind per file)."""
    from datasets import Dataset

    p = Path(path)
    if not p.is_file():
        raise UserError(f"SFT data not found: {p}")
    rows = []
    for i, row in enumerate(iter_jsonl(p), 1):
        keys = ("prompt", "completion") if "prompt" in row else ("messages",)
        out = {k: _messages(row.get(k)) for k in keys}
        if any(v is None for v in out.values()):
            raise UserError(
                f"{p}:{i}: missing or invalid `{'` or `'.join(keys)}` (expected a list of role/content messages)"
            )
        if rows and set(out) != set(rows[0]):
            raise UserError(f"{p}:{i}: rows mix `messages` and `prompt`/`completion`; use one kind per file")
        rows.append(out)
        if limit and len(rows) >= limit:
            break
    if not rows:
        raise UserError(f"{p}: no rows")
    return Dataset.from_list(rows)


def step_rows(srl_rows: Iterable[dict]) -> list[dict]:
    """Prompt-completion SFT rows from SRL step instances: the step's prompt, then the expert's reply
    (`<think>` thought + action) as the completion, so the loss is on exactly that reply."""
    return [
        {
            "prompt": r["prompt"],
            "completion": [
                {"role": "assistant", "content": assistant_turn(r["expert_thought"], r["expert_action"])}
            ],
        }
        for r in srl_rows
    ]


def draw_indices(n_rows: int, steps: int, batch: int, seed: int) -> list[int]:
    """`data.order: draws`: `batch` distinct row indices per step, `steps` times (random.Random(seed))."""
    rng = random.Random(seed)
    return [j for _ in range(steps) for j in rng.sample(range(n_rows), min(batch, n_rows))]


def warmup_cosine(step: int, steps: int, warmup: int) -> float:
    """The `warmup_cosine` learning-rate factor at `step` (0-based) of `steps`.

    >>> [round(warmup_cosine(s, 4, 2), 3) for s in range(4)]
    [0.5, 0.854, 0.5, 0.146]
    """
    return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))


THINK_OPEN = "<think>"


def trained_turns(turns: list[str], loss_on: str = "auto") -> list[bool]:
    """Which assistant turns (their contents, in order) get the loss; see `SFTTrainConfig.loss_on`."""
    if loss_on == "all":
        return [True] * len(turns)
    if loss_on == "last":
        return [i == len(turns) - 1 for i in range(len(turns))]
    thinks = [t.lstrip().startswith(THINK_OPEN) for t in turns]
    return [i == len(turns) - 1 or th or not thinks[-1] for i, th in enumerate(thinks)]


def mask_runs(mask: list[int]) -> list[tuple[int, int]]:
    """(start, end) of each run of ones."""
    runs, start = [], None
    for i, bit in enumerate([*mask, 0]):
        if bit and start is None:
            start = i
        elif not bit and start is not None:
            runs.append((start, i))
            start = None
    return runs


def encode_row(messages: list[dict], tokenizer, loss_on: str = "auto") -> dict:
    """`input_ids` and `assistant_masks` of a conversation (the chat template's generation-marker mask, as
    TRL's `assistant_only_loss` computes it), with the turns `trained_turns` leaves out cleared."""
    enc = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = list(enc["input_ids"]), list(enc["assistant_masks"])
    turns = [m["content"] for m in messages if m["role"] == "assistant"]
    keep = trained_turns(turns, loss_on)
    if all(keep):
        return {"input_ids": ids, "assistant_masks": mask}
    runs = mask_runs(mask)
    if len(runs) != len(turns):
        raise UserError(
            f"the chat template's {{% generation %}} markers give {len(runs)} assistant spans for "
            f"{len(turns)} assistant turns; set train.loss_on=all"
        )
    for (start, end), trained in zip(runs, keep, strict=True):
        if not trained:
            mask[start:end] = [0] * (end - start)
    return {"input_ids": ids, "assistant_masks": mask}


def has_generation_markers(template: str | dict | None) -> bool:
    """`{% generation %}` present (not just `add_generation_prompt`, which every template has): TRL's check."""
    from trl.chat_template_utils import has_generation_markers as trl_has_generation_markers

    return bool(template) and trl_has_generation_markers(template)


def training_chat_template(tokenizer, model_path: str) -> str:
    """A chat template with `{% generation %}` markers for the assistant-only loss.

    Qwen2.5's own template (and most others) has none; TRL ships patched, render-identical
    training variants of the common ones (Qwen2.5/3, Llama 3, Gemma, ...), picked by
    `trl.chat_template_utils.get_training_chat_template`. The patched template is saved with the
    trained model's tokenizer; generation renders exactly as with the original.
    """
    from trl.chat_template_utils import get_training_chat_template

    try:
        patched = get_training_chat_template(tokenizer)
    except Exception:  # noqa: BLE001 - an unusual template: fall through to the one-line error
        patched = None
    if not patched or not has_generation_markers(patched):
        raise UserError(
            f"{model_path}: the chat template has no {{% generation %}} markers (needed for the loss on "
            "assistant turns only) and TRL has no training variant of it; add the markers to the "
            "template or set train.assistant_only_loss=false"
        )
    log.info("chat template: using TRL's training variant with {%% generation %%} markers")
    return patched


def tokenize_sft_dataset(dataset, tokenizer, loss_on: str = "auto"):
    """Add `input_ids` and `assistant_masks` (see `encode_row`); TRL then builds the labels from them."""
    n_turns = n_trained = 0
    for row in dataset["messages"]:
        turns = [m["content"] for m in row if m["role"] == "assistant"]
        n_turns += len(turns)
        n_trained += sum(trained_turns(turns, loss_on))
    log.info("SFT loss on %d of %d assistant turns (train.loss_on=%s)", n_trained, n_turns, loss_on)
    return dataset.map(
        lambda row, tokenizer, loss_on: encode_row(row["messages"], tokenizer, loss_on),
        fn_kwargs={"tokenizer": tokenizer, "loss_on": loss_on},
        desc="Tokenizing SFT rows",
    )


def _trainer_class(schedule: str, warmup_ratio: float):
    """TRL's SFTTrainer; with `warmup_cosine`, its scheduler is that schedule."""
    from torch.optim.lr_scheduler import LambdaLR
    from trl import SFTTrainer

    if schedule != "warmup_cosine":
        return SFTTrainer

    class WarmupCosineSFTTrainer(SFTTrainer):
        def create_scheduler(self, num_training_steps: int, optimizer=None):
            if self.lr_scheduler is None:
                warmup = max(1, int(warmup_ratio * num_training_steps))
                self.lr_scheduler = LambdaLR(
                    optimizer or self.optimizer, lambda s: warmup_cosine(s, num_training_steps, warmup)
                )
            return self.lr_scheduler

    return WarmupCosineSFTTrainer


def train_sft(cfg: SFTConfig, on_step: OnStep | None = None) -> dict:
    from trl import SFTConfig as TRLSFTConfig

    from swesrl.training.plots import MetricsFileCallback

    t, o = cfg.train, cfg.output
    per_pass = t.micro_batch_size * world_size()
    if t.global_batch_size % per_pass:
        raise UserError(f"global_batch_size ({t.global_batch_size}) must be a multiple of {per_pass}")
    if cfg.data.order == "draws" and t.max_steps < 1:
        raise UserError("data.order=draws needs train.max_steps (steps are not epochs)")
    dataset = load_sft_dataset(cfg.data.path, cfg.data.limit)
    completions = "completion" in dataset.column_names  # prompt-completion rows: loss on the completion
    model, tokenizer = load_policy(cfg.model)
    assistant_only = t.assistant_only_loss and not completions
    if assistant_only and not has_generation_markers(tokenizer.chat_template):
        tokenizer.chat_template = training_chat_template(tokenizer, cfg.model.path)
    if assistant_only:
        dataset = tokenize_sft_dataset(dataset, tokenizer, t.loss_on)
        length = lambda row: len(row["input_ids"])  # noqa: E731
    elif completions:
        length = lambda row: chat_tokens(tokenizer, row["prompt"] + row["completion"])  # noqa: E731
    else:
        length = lambda row: chat_tokens(tokenizer, row["messages"])  # noqa: E731
    limits = [n for n in (context_length(model), t.max_length) if n]
    dataset = fit_context(dataset, length, min(limits) if limits else None, 0, "SFT", cfg.data.too_long)
    if cfg.data.order == "draws":
        dataset = dataset.select(draw_indices(len(dataset), t.max_steps, t.global_batch_size, t.seed))
    report_to = [r for r in o.report_to if r != "none"]
    custom_schedule = t.lr_scheduler_type == "warmup_cosine"
    args = TRLSFTConfig(
        output_dir=o.dir,
        per_device_train_batch_size=t.micro_batch_size,
        gradient_accumulation_steps=t.global_batch_size // per_pass,
        learning_rate=t.learning_rate,
        lr_scheduler_type="constant" if custom_schedule else t.lr_scheduler_type,
        warmup_steps=0 if custom_schedule else t.warmup_ratio,
        num_train_epochs=t.num_epochs,
        max_steps=t.max_steps,
        max_length=t.max_length,
        assistant_only_loss=assistant_only,
        train_sampling_strategy="sequential" if cfg.data.order == "draws" else "random",
        bf16=t.bf16,
        seed=t.seed,
        optim=t.optim,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        gradient_checkpointing=cfg.model.gradient_checkpointing,
        save_steps=o.save_steps,
        save_total_limit=o.save_total_limit,
        logging_steps=o.logging_steps,
        report_to=report_to or "none",
        disable_tqdm=True,
        dataloader_pin_memory=_cuda(),
    )
    out_dir = Path(o.dir)
    trainer = _trainer_class(t.lr_scheduler_type, t.warmup_ratio)(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[MetricsFileCallback(out_dir / "metrics.jsonl")],
    )
    summary = train_and_save(trainer, tokenizer, out_dir, o.resume, o.plots, on_step)
    losses = [h["loss"] for h in summary.pop("log_history") if "loss" in h]
    summary["first_loss"] = losses[0] if losses else None
    summary["last_loss"] = losses[-1] if losses else None
    return summary


def load_sft_config(config: str, overrides: list[str] | None = None) -> SFTConfig:
    return load_config(SFTConfig, [config, *(overrides or [])])
