"""Rows that do not fit the model's context are dropped with one line, or refused, before training."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from datasets import Dataset

import swesrl
from swesrl.training.context import fit_context
from swesrl.training.sft import load_sft_config, train_sft
from swesrl.training.srl import load_srl_config, train_srl
from swesrl.utils import UserError

ACT = "<function=bash>\n<parameter=command>ls</parameter>\n</function>"


def rows(n_short: int, n_long: int, long_words: int):
    out = []
    for i in range(n_short + n_long):
        text = "Run ls" if i < n_short else "Run ls " + "word " * long_words
        prompt = [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": text}]
        out.append({"instance_id": f"t{i}", "step": 0, "n_steps": 1, "prompt": prompt, "expert_action": ACT})
    return out


def test_fit_context_drops_or_refuses_and_names_the_fix(caplog):
    ds = Dataset.from_list([{"n": n} for n in (10, 50, 90, 200)])
    with caplog.at_level(logging.WARNING):
        kept = fit_context(ds, lambda r: r["n"], context=128, reserve=28, what="SRL")
    assert kept["n"] == [10, 50, 90]
    assert "1 of 4 SRL rows do not fit" in caplog.text and "--max-prompt-tokens 100" in caplog.text
    with pytest.raises(UserError, match="longest 200 tokens, limit 100"):
        fit_context(ds, lambda r: r["n"], context=128, reserve=28, what="SRL", too_long="error")
    with pytest.raises(UserError, match="no row is left"):
        fit_context(ds, lambda r: r["n"], context=8, reserve=0, what="SFT")
    assert fit_context(ds, lambda r: r["n"], context=None, reserve=0, what="SFT") is ds


SHIPPED = Path(swesrl.__file__).parent / "checkpoints" / "tiny-demo"


def test_srl_and_sft_refuse_data_that_cannot_fit_before_any_step(tmp_path):
    """The shipped checkpoint's context is 2,048 tokens: prompts of ~3,000 are refused up front."""
    tiny = tmp_path
    srl = rows(0, 3, 3000)
    (tiny / "srl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in srl))
    cfg = load_srl_config(
        "srl_tiny.yaml",
        [f"model.path={SHIPPED}", f"data.path={tiny / 'srl.jsonl'}", f"output.dir={tiny / 'srl'}"],
    )
    with pytest.raises(UserError, match="3 of 3 SRL rows do not fit .*no row is left"):
        train_srl(cfg)
    sft = [
        {"messages": [*r["prompt"], {"role": "assistant", "content": f"<think>x</think>\n{ACT}"}]}
        for r in srl
    ]
    (tiny / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))
    cfg = load_sft_config(
        "sft_tiny.yaml",
        [f"model.path={SHIPPED}", f"data.path={tiny / 'sft.jsonl'}", f"output.dir={tiny / 'sft'}"],
    )
    with pytest.raises(UserError, match="3 of 3 SFT rows do not fit"):
        train_sft(cfg)
