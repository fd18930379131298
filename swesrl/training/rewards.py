"""The SRL reward: string similarity of the policy's action to the expert's action at this step.

Following the paper (Deng et al. 2025, sec. 3): the completion must be a `<think>...</think>`
monologue followed by exactly one action; the reward is computed on the action only,

    R = 2M / T   (Python's `difflib.SequenceMatcher(None, a, b).ratio()`, autojunk on)
    R = -1       when the format fails.

What is compared (default `compare="text"`, the paper's choice): `a` is everything the policy
wrote after its last `</think>`, stripped of surrounding whitespace; `b` is the expert action
string (the SWE-agent XML call from the trajectory), stripped. The format check is
`swesrl.core.actions.parse_action` (exactly one well-formed call to a known tool, with its
required parameters) plus, by default, a closed `</think>` before the call. Options:
`compare="call"` compares only the call as written (`<function=` .. `</function>`, ignoring any
text around it), `compare="canonical"` compares `Action.canonical()` of both calls (parameter
order and surrounding whitespace no longer matter; an unparsable expert falls back to its text).

`reward.compare: execution | mixed` (`training/exec_reward.py`) scores what the action does instead:
both actions run on the step's sandbox state and their effects are compared; `mixed` weights this
text reward against it.

The ratio is asymmetric in (a, b); `a` is always the policy's action, `b` the expert's.
A C implementation of difflib (`cydifflib`, verified identical) is used when importable; the
matcher for each expert action is built once and reused for its G completions, and repeated
(completion, expert) pairs in a batch are scored once. All three are exact.

>>> srl_reward(["<think>list files</think>\\n<function=bash>\\n<parameter=command>ls</parameter>\\n</function>"],
...            ["<function=bash>\\n<parameter=command>ls</parameter>\\n</function>"])
[1.0]
>>> srl_reward(["<think>x</think><function=bash>\\n<parameter=command>ls -a</parameter>\\n</function>",
...             "no call at all"], "<function=bash>\\n<parameter=command>ls</parameter>\\n</function>")
[0.976, -1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from swesrl.core.actions import FormatError, parse_action

try:
    from cydifflib import SequenceMatcher
except ImportError:  # pragma: no cover - cydifflib is a dependency; difflib gives identical values
    from difflib import SequenceMatcher

FORMAT_FAILURE = -1.0
Compare = Literal["text", "call", "canonical"]


def completion_text(completion: Any) -> str:
    """A completion as TRL passes it: a string, or a conversation (list of messages): the last one's text."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, Sequence) and completion:
        return completion_text(completion[-1])
    return ""


def extract_action(text: str, compare: Compare = "text", require_think: bool = True) -> str | None:
    """The string the reward compares, or None when the completion fails the format."""
    if require_think and "</think>" not in text:
        return None
    try:
        _, action = parse_action(text)
    except FormatError:
        return None
    if compare == "call":
        return action.raw
    if compare == "canonical":
        return action.canonical()
    return text.rsplit("</think>", 1)[-1].strip()


def expert_text(expert: str, compare: Compare = "text") -> str:
    if compare == "canonical":
        try:
            return parse_action(expert)[1].canonical()
        except FormatError:
            return expert.strip()
    return expert.strip()


def similarity(a: str, b: str) -> float:
    """Exactly `difflib.SequenceMatcher(None, a, b).ratio()`."""
    return 1.0 if a == b else SequenceMatcher(None, a, b).ratio()


def srl_reward(
    completions: Sequence[Any],
    expert_action: Sequence[str] | str,
    compare: Compare = "text",
    require_think: bool = True,
    **kwargs: Any,
) -> list[float]:
    """One reward per completion (TRL reward-function signature; extra dataset columns are ignored)."""
    experts = [expert_action] * len(completions) if isinstance(expert_action, str) else list(expert_action)
    if len(experts) != len(completions):
        raise ValueError(f"{len(completions)} completions but {len(experts)} expert actions")
    matchers: dict[str, Any] = {}
    seen: dict[tuple[str, str], float] = {}
    rewards: list[float] = []
    for completion, expert in zip(completions, experts, strict=True):
        a = extract_action(completion_text(completion), compare, require_think)
        if a is None:
            rewards.append(FORMAT_FAILURE)
            continue
        b = expert_text(expert or "", compare)
        key = (a, b)
        if key not in seen:
            if a == b:
                seen[key] = 1.0
            else:
                sm = matchers.get(b)
                if sm is None:
                    sm = matchers[b] = SequenceMatcher(None, "", b)
                sm.set_seq1(a)
                seen[key] = sm.ratio()
        rewards.append(seen[key])
    return rewards
