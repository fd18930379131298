"""Name augmentation for bundled-task conversations: fresh names force copying instead of recall.

A tiny model trained on a few hundred bundled repositories learns their names by heart and then,
on a repository it has never seen, writes a remembered package path instead of the one the
previous observation printed. `rename_names` rewrites a conversation with fresh, consistent
names, so the only way to predict them is to copy them from the prompt
(`scripts/pretrain_tiny.py --rename`).
"""

from __future__ import annotations

import random
import re

from swesrl.tasks.catalog import THEMES
from swesrl.tasks.generate import _PREFIXES, _SUFFIXES

_CONSONANTS = "bcdfghjklmnpqrstvwxz"
_VOWELS = "aeiouy"


def pseudo_word(rng: random.Random, syllables: tuple[int, int] = (2, 4)) -> str:
    """A pronounceable nonsense identifier (`zorvatek`): names the model cannot have memorised."""
    return "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(rng.randint(*syllables))) + (
        rng.choice(_CONSONANTS) if rng.random() < 0.5 else ""
    )


def _new_repo_name(rng: random.Random, avoid: set[str], p_recombine: float) -> tuple[str, str]:
    """Two name parts: bundled prefix + suffix recombined (so their tokens are copied too), or pseudo-words."""
    while True:
        if rng.random() < p_recombine:
            a, b = rng.choice(_PREFIXES), rng.choice(_SUFFIXES)
        else:
            a, b = pseudo_word(rng, (1, 3)), pseudo_word(rng, (1, 2))
        if f"{a}-{b}" not in avoid:
            return a, b


def rename_names(
    messages: list[dict],
    rng: random.Random,
    p_functions: float = 0.5,
    p_recombine: float = 0.5,
    avoid: set[str] | frozenset[str] = frozenset(),
) -> list[dict]:
    """Consistently rename the repository / package (and, with `p_functions`, the function) names.

    A copy-skill augmentation for the extra suites: every occurrence (whole identifiers only) of
    a bundled repository or package name, e.g. `harbor-forge`, `harborforge`, `harbor_forge`, is
    replaced by one fresh pseudo-word throughout the conversation (issue, observations, the
    expert's `<think>` and action), so the only way to predict the path in the expert's next
    command is to copy it from the prompt. The renamed conversation is as consistent as the
    original: the same substitution applies to what the sandbox printed and to what the expert
    typed. Held-out evaluation is unaffected: it runs real repositories in real sandboxes.

    With `p_recombine` the new name is a random bundled prefix + suffix pair (never one in `avoid`,
    `prefix-suffix` repository names, e.g. the held-out ones, nor the original), else pseudo-words:
    the copy skill then covers the tokens real names are made of.
    """
    text = "\x00".join(m["content"] for m in messages)
    mapping: dict[str, str] = {}
    for pre in _PREFIXES:
        if pre not in text:
            continue
        for suf in _SUFFIXES:
            forms = [f"{pre}{suf}", f"{pre}_{suf}", f"{pre}-{suf}"]
            present = [f for f in forms if re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text)]
            if present:
                a, b = _new_repo_name(rng, {*avoid, f"{pre}-{suf}"}, p_recombine)
                for f in present:
                    sep = "_" if "_" in f else "-" if "-" in f else ""
                    mapping[f] = f"{a}{sep}{b}"
    if rng.random() < p_functions:
        for theme in THEMES:
            for snip in theme.snippets:
                for alias in snip.aliases:
                    if re.search(rf"\b{re.escape(alias)}\b", text):
                        mapping[alias] = "_".join(pseudo_word(rng, (2, 3)) for _ in range(rng.randint(1, 2)))
    if not mapping:
        return messages
    pattern = re.compile(
        r"(?<![\w-])("
        + "|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True))
        + r")(?![\w-])"
    )
    return [{**m, "content": pattern.sub(lambda x: mapping[x.group(1)], m["content"])} for m in messages]
