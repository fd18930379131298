"""Rows that do not fit the model's context are counted before training, never trained on silently.

A prompt longer than the context (minus the completion budget, for SRL) is truncated by the
tokenizer or the model: every completion then fails the format, every reward is -1 and the
gradient is zero, with one transformers warning among hundreds of lines. `fit_context` measures
each row with the chat template, then drops those rows with one clear line (`too_long: drop`,
the default) or refuses to train (`too_long: error`), naming the fix: `swesrl data build
--tokenizer MODEL --max-prompt-tokens N` clips observations so prompts fit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from swesrl.utils import UserError

log = logging.getLogger(__name__)


def chat_tokens(tokenizer: Any, messages: list[dict], add_generation_prompt: bool = False) -> int:
    """Tokens of `messages` under the chat template (transformers 5 returns a BatchEncoding)."""
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True)
    ids = out["input_ids"] if hasattr(out, "keys") else out
    return len(ids)


def context_length(model: Any) -> int | None:
    cfg = getattr(model, "config", None)
    n = getattr(cfg, "max_position_embeddings", None)
    return int(n) if isinstance(n, int) and n > 0 else None


def fit_context(
    dataset,
    length: Callable[[dict], int],
    context: int | None,
    reserve: int,
    what: str,
    too_long: str = "drop",
):
    """`dataset` without the rows for which `length(row) + reserve > context` (see the module doc)."""
    if context is None:
        return dataset
    budget = context - reserve
    if budget <= 0:
        raise UserError(
            f"the completion budget ({reserve} tokens) does not fit the model's context ({context})"
        )
    lengths = [length(row) for row in dataset]
    keep = [i for i, n in enumerate(lengths) if n <= budget]
    n_long = len(lengths) - len(keep)
    if not n_long:
        return dataset
    msg = (
        f"{n_long} of {len(lengths)} {what} rows do not fit the model's context ({context} tokens"
        + (f", {reserve} kept for the completion" if reserve else "")
        + f"): longest {max(lengths)} tokens, limit {budget}. Rebuild the data with "
        f"`swesrl data build --tokenizer <model> --max-prompt-tokens {budget}` to clip them"
    )
    if too_long == "error" or not keep:
        raise UserError(msg + ("" if keep else "; no row is left to train on"))
    log.warning("%s; training on the other %d (data.too_long=drop)", msg, len(keep))
    return dataset.select(keep)
