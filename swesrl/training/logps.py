"""Per-token log-probs for the GRPO loss without a padding mask (the trainers' forward pass).

TRL lays a training row out as [left padding, prompt, completion, right padding] and passes the
padding mask to the model. A padding mask keeps SDPA (and flash attention) off their causal kernels:
on CPU a forward + backward of 5 rows x 900 tokens took 0.50 s with the mask and 0.30 s without.
Here every row's real tokens (one contiguous run of the mask) are moved to the row's start, the
padding all goes to the end, and the model runs with no mask at all: causal attention never lets a
real token see the padding after it, so every real token's log-prob is the same as in TRL's layout
(RoPE depends on relative positions only; float rounding aside). The results are moved back to
TRL's completion columns. Rows whose mask is not one contiguous run go TRL's way.

The pass runs under `scored_positions_only()`: TRL's fused LM head projects and scores only the
labelled positions (the completion) on CUDA/XPU, and every position elsewhere (fixed tile shapes
for compilers such as Neuron's); on CPU, where nothing is compiled, scoring the prompt's positions
too made a forward + backward of 5 rows x 600 tokens (120 scored) 2.1x slower (663 vs 310 ms;
the same log-probs, gradients equal to float rounding).
"""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def scored_positions_only():
    """TRL's fused LM head takes its compact path (only labelled positions) on CPU too, in this block.

    TRL picks the path by `trl.trainer.utils._use_triton(device)`; this swaps that name for one that
    is also true on CPU (the Triton kernel choice is made elsewhere and is unchanged). A TRL without
    that name leaves the head as it is (tests check the name exists in the pinned TRL)."""
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None:
        yield
        return
    trl_utils._use_triton = lambda device: device.type == "cpu" or original(device)
    try:
        yield
    finally:
        trl_utils._use_triton = original


def left_align(input_ids, attention_mask, score_from: int = 0):
    """(ids, labels, shift) with each row's real tokens moved to the start, or None when some row's
    mask is not one contiguous run of ones. `ids` is cut to the longest row (what follows a row's
    real tokens is never seen by them); `labels` is the ids of the real tokens at original column
    `score_from` or later (the completion, the only tokens scored), -100 elsewhere; `shift` (rows,)
    is how far each row moved left.

    >>> import torch
    >>> ids = torch.tensor([[0, 0, 5, 6, 7], [0, 8, 9, 4, 0]])
    >>> mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 1, 0]])
    >>> a, labels, shift = left_align(ids, mask)
    >>> a.tolist(), labels.tolist(), shift.tolist()
    ([[5, 6, 7], [8, 9, 4]], [[5, 6, 7], [8, 9, 4]], [2, 1])
    >>> left_align(ids, mask, score_from=3)[1].tolist()
    [[-100, 6, 7], [-100, -100, 4]]
    """
    import torch

    mask = attention_mask.bool()
    rows, width = mask.shape
    length = mask.sum(1)  # (R,)
    shift = mask.int().argmax(1)  # first real column (0 for an empty row)
    cols = torch.arange(width, device=mask.device)
    run = (cols >= shift[:, None]) & (cols < (shift + length)[:, None])
    if not torch.equal(run, mask):
        return None
    keep = max(int(length.max()), 2)  # the causal shift needs two positions
    src = (shift[:, None] + cols[None, :keep]).clamp(max=width - 1)
    ids = input_ids.gather(1, src)
    scored = (cols[None, :keep] < length[:, None]) & (src >= score_from)
    return ids, ids.masked_fill(~scored, -100), shift


def to_completion_columns(values, shift, width: int, logits_to_keep: int, completion_mask):
    """Per-position values of the left-aligned rows (`values[:, j]`: the prediction of aligned token
    j + 1) as TRL's (rows, logits_to_keep) block for the completion columns of the original layout
    (`width` wide), 0 where the completion mask is 0 (as TRL's own scores are)."""
    import torch

    first = width - logits_to_keep  # first completion column of the original rows
    cols = torch.arange(logits_to_keep, device=values.device)
    src = (first + cols[None, :] - 1 - shift[:, None]).clamp(min=0, max=values.size(1) - 1)
    return values.gather(1, src).masked_fill(completion_mask == 0, 0.0)
