"""Context policies: which part of a trajectory the model sees when it chooses its next action.

One code path for run time and for training prompts: the agent loop calls `select_context` on
its message list before each query, and `swesrl data build` calls it on expert trajectories, so
an SRL training prompt at step k is exactly what the agent would be sent at step k.

Messages are OpenAI-style dicts: `[system, user (task), assistant, user (observation), ...]`.
- `full`: everything.
- `srl` (the paper's SWE context): the task plus the last `k` action/observation pairs; earlier
  pairs are dropped and a note says how many; the assistant turns kept show the action only
  (the expert's private monologue is what the policy must produce itself).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from swesrl.config import StrictModel
from swesrl.core.actions import FormatError, parse_action


class ContextPolicy(StrictModel):
    kind: Literal["full", "srl"] = "srl"
    """`srl`: task + last k action/observation pairs (the paper); `full`: the whole history."""
    k: int = 2
    """Action/observation pairs kept by the `srl` policy (paper: 2)."""
    keep_thoughts: bool = False
    """Keep the reasoning of earlier assistant turns in the `srl` context (paper: no)."""
    omitted_note: str = "({n} earlier steps omitted)"
    """Text put before the kept steps when earlier ones were dropped; empty for none."""


@lru_cache(maxsize=4096)
def action_only(content: str) -> str:
    """The call of an assistant turn without its reasoning (unparseable turns are kept as they are)."""
    try:
        _, action = parse_action(content)
    except FormatError:
        return content
    return action.raw


def select_context(messages: list[dict], policy: ContextPolicy) -> list[dict]:
    head, turns = messages[:2], messages[2:]
    if policy.kind == "full":
        return [dict(m) for m in messages]
    pairs = [turns[i : i + 2] for i in range(0, len(turns), 2)]
    kept = pairs[-policy.k :] if policy.k > 0 else []
    n_omitted = len(pairs) - len(kept)
    out = [dict(m) for m in head]
    if n_omitted and policy.omitted_note and out:
        note = policy.omitted_note.format(n=n_omitted)
        out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n\n{note}"}
    for pair in kept:
        for m in pair:
            m = dict(m)
            if m["role"] == "assistant" and not policy.keep_thoughts:
                m["content"] = action_only(m["content"])
            out.append(m)
    return out
