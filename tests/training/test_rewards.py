import difflib
import doctest

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import swesrl.training.rewards as rewards
from swesrl.training.rewards import similarity, srl_reward

CALL = "<function=bash>\n<parameter=command>{}</parameter>\n</function>"
EDIT = (
    "<function=str_replace_editor>\n<parameter=command>str_replace</parameter>\n"
    "<parameter=path>{}</parameter>\n<parameter=old_str>{}</parameter>\n<parameter=new_str>{}</parameter>\n</function>"
)


def test_doctests():
    assert doctest.testmod(rewards).failed == 0


def test_uses_the_c_matcher():
    assert rewards.SequenceMatcher.__module__.startswith("cydifflib")


# Small alphabets make long repeats (so autojunk's "popular" pruning kicks in past 200 chars).
texts = st.one_of(
    st.text(alphabet="ab \n", max_size=60),
    st.text(alphabet="abcdefgh(){}:=_ \n", max_size=600),
    st.text(max_size=300),
)


@settings(max_examples=4000, deadline=None, suppress_health_check=list(HealthCheck))
@given(texts, texts)
def test_similarity_matches_difflib(a, b):
    assert similarity(a, b) == difflib.SequenceMatcher(None, a, b).ratio()


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.text(alphabet="abcxyz_/ .\n", max_size=400), min_size=1, max_size=8), texts, texts)
def test_reward_matches_difflib_on_groups(cmds, old, new):
    expert = EDIT.format("/testbed/a.py", old, new)
    completions = [f"<think>t</think>\n{CALL.format(c)}" for c in cmds] + [
        f"<think>t</think>{EDIT.format('/testbed/b.py', old, new)}"
    ] * 2
    got = srl_reward(completions, [expert] * len(completions))
    want = [
        difflib.SequenceMatcher(None, c.split("</think>")[1].strip(), expert.strip()).ratio()
        for c in completions
    ]
    assert got == want


def test_long_strings_with_autojunk():
    code = "".join(f"    x{i % 7} = y[{i % 13}] + {i}\n" for i in range(80))
    a, b = code, code.replace("+", "-", 5) + "return x\n"
    assert len(b) > 1000
    assert similarity(a, b) == difflib.SequenceMatcher(None, a, b).ratio()
    assert similarity(a, b) != difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def test_format_failures_and_conversational_completions():
    expert = CALL.format("ls")
    good = "<think>look</think>\n" + CALL.format("ls")
    cases = [
        good,
        CALL.format("ls"),  # no </think>
        "<think>x</think> no call",
        "<think>x</think>" + CALL.format("ls") + CALL.format("pwd"),  # two calls
        "<think>x</think><function=rm>\n</function>",  # unknown tool
        "<think>x</think><function=bash>\n</function>",  # missing parameter
        [{"role": "assistant", "content": good}],
    ]
    assert srl_reward(cases, expert) == [1.0, -1.0, -1.0, -1.0, -1.0, -1.0, 1.0]
    assert srl_reward([CALL.format("ls")], [expert], require_think=False) == [1.0]


def test_compare_modes():
    expert = "<function=str_replace_editor>\n<parameter=path>/p</parameter>\n<parameter=command>view</parameter>\n</function>"
    reordered = "<think>t</think>I will look.\n" + (
        "<function=str_replace_editor>\n<parameter=command>view</parameter>\n<parameter=path>/p</parameter>\n</function>"
    )
    text, call, canon = (
        srl_reward([reordered], [expert], compare=m)[0] for m in ("text", "call", "canonical")
    )
    assert canon == 1.0
    assert text < call < 1.0


def test_mismatched_lengths():
    with pytest.raises(ValueError):
        srl_reward(["a", "b"], ["x"])
