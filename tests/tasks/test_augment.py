import random
import re

from swesrl.tasks.augment import pseudo_word, rename_names

CONVERSATION = [
    {"role": "system", "content": "Fix the issue in the repository at /testbed."},
    {
        "role": "user",
        "content": "`order_total` ignores quantities\n\n```python\nfrom harborforge.utils.invoice import "
        "order_total\n```\nThis is with harborforge 1.4 (repo harbor-forge).",
    },
    {
        "role": "assistant",
        "content": '<function=bash>\n<parameter=command>grep -rn "def order_total(" /testbed',
    },
    {
        "role": "user",
        "content": "OBSERVATION:\n/testbed/harborforge/utils/invoice.py:4:def order_total(lines):\n",
    },
    {
        "role": "assistant",
        "content": "<think>\n`order_total` is in /testbed/harborforge/utils/invoice.py. Read it.\n</think>\n"
        '<function=bash>\n<parameter=command>grep -n -A 10 "def order_total(" '
        "/testbed/harborforge/utils/invoice.py</parameter>\n</function>",
    },
    {"role": "user", "content": "harborforgeextra and my_harborforge are other identifiers"},
]


def _paths(text: str) -> list[str]:
    return re.findall(r"/testbed/[\w/]+\.py", text)


def test_package_renamed_consistently_everywhere():
    out = rename_names(CONVERSATION, random.Random(0), p_functions=0.0)
    text = "\n".join(m["content"] for m in out)
    assert not re.search(r"(?<![\w-])harborforge(?![\w-])", text)
    assert "harbor-forge" not in text
    # the path the observation printed is exactly the path the expert then typed
    assert _paths(out[3]["content"]) == _paths(out[4]["content"])[-1:]
    new = _paths(out[3]["content"])[0].split("/")[2]
    assert new != "harborforge" and re.fullmatch(r"[a-z]+", new)
    assert f"from {new}.utils.invoice import" in out[1]["content"]
    # longer identifiers that merely contain the name are left alone; roles and order kept
    assert out[5]["content"] == CONVERSATION[5]["content"]
    assert [m["role"] for m in out] == [m["role"] for m in CONVERSATION]
    assert "order_total" in out[4]["content"]  # p_functions=0: function names kept


def test_function_names_renamed_with_p_functions_one():
    out = rename_names(CONVERSATION, random.Random(1), p_functions=1.0)
    text = "\n".join(m["content"] for m in out)
    assert "order_total" not in text
    new_fn = re.search(r'grep -rn "def (\w+)\(', out[2]["content"]).group(1)
    assert f"def {new_fn}(lines)" in out[3]["content"]
    assert f"`{new_fn}` ignores quantities" in out[1]["content"]


def test_seeded_and_input_untouched():
    before = [dict(m) for m in CONVERSATION]
    a = rename_names(CONVERSATION, random.Random(5))
    b = rename_names(CONVERSATION, random.Random(5))
    assert a == b
    assert before == CONVERSATION
    assert rename_names([{"role": "user", "content": "no names here"}], random.Random(0)) == [
        {"role": "user", "content": "no names here"}
    ]


def test_pseudo_words_are_plain_lowercase_and_varied():
    rng = random.Random(0)
    words = {pseudo_word(rng) for _ in range(200)}
    assert all(re.fullmatch(r"[a-z]{4,9}", w) for w in words)
    assert len(words) > 190


def test_recombined_names_use_bundled_parts_and_avoid_held_out():
    from swesrl.tasks.generate import _PREFIXES, _SUFFIXES

    avoid = {f"{p}-{s}" for p in _PREFIXES[:20] for s in _SUFFIXES}
    for seed in range(30):
        out = rename_names(CONVERSATION, random.Random(seed), p_functions=0.0, p_recombine=1.0, avoid=avoid)
        dashed = re.search(r"repo ([\w-]+)\)", out[1]["content"]).group(1)
        pre, suf = dashed.split("-")
        assert pre in _PREFIXES[20:] and suf in _SUFFIXES
        assert _paths(out[3]["content"])[0] == f"/testbed/{pre}{suf}/utils/invoice.py"
