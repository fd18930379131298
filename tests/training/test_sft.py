"""SFT with TRL's SFTTrainer on step rows: the loss must stay on replies in the `<think>` + call form.

Step rows (an SRL prompt plus the expert's reply) carry the earlier steps as context without their
thoughts. With the loss on every assistant turn, most trained turns start with `<function=`, and
the saved model stops writing the `<think>` block (the reward's format check then fails).
"""

import json

import pytest
import torch
import trl
from transformers import AutoModelForCausalLM, AutoTokenizer

from swesrl.training.rewards import extract_action
from swesrl.training.sft import (
    SFTConfig,
    draw_indices,
    encode_row,
    load_sft_config,
    step_rows,
    train_sft,
    trained_turns,
    warmup_cosine,
)
from swesrl.training.tiny import build_tiny_model
from swesrl.utils import UserError

CMDS = ["ls", "cat setup.py", "git status", "grep -rn foo src"]
SYSTEM = "Reply with <think>reasoning</think> then one call."


def call(cmd: str) -> str:
    return f"<function=bash>\n<parameter=command>{cmd}</parameter>\n</function>"


def step_row(i: int) -> dict:
    """Task, `i % 4` earlier steps as the SRL context shows them (no thoughts), then the expert's reply.

    As in real step rows, the turn right after the task is a context turn (`<function=`) in most rows
    and the reply (`<think>`) in the first-step ones."""
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Fix bug {i}."}]
    for k in range(i % 4):
        msgs += [
            {"role": "assistant", "content": call(CMDS[(i + k) % len(CMDS)])},
            {"role": "user", "content": "OBSERVATION:\nok"},
        ]
    reply = f"<think>\nlook at {i % 3}\n</think>\n{call(CMDS[(i + 3) % len(CMDS)])}"
    return {"messages": [*msgs, {"role": "assistant", "content": reply}]}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("sft")
    rows = [step_row(i) for i in range(16)]
    (d / "steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    texts = [m["content"] for r in rows for m in r["messages"]] * 20
    build_tiny_model(d / "tiny", texts=texts, vocab_size=300, hidden_size=64, num_layers=2, seed=0)
    return d


def label_spans(labels: list[int]) -> list[list[int]]:
    spans: list[list[int]] = []
    for i, label in enumerate(labels):
        if label != -100:
            if i == 0 or labels[i - 1] == -100:
                spans.append([])
            spans[-1].append(label)
    return spans


def test_trained_turns_modes():
    turns = [call("ls"), "<think>x</think>" + call("ls"), call("ls"), "<think>y</think>" + call("ls")]
    assert trained_turns(turns, "auto") == [False, True, False, True]
    assert trained_turns(turns, "all") == [True] * 4
    assert trained_turns(turns, "last") == [False, False, False, True]
    # Replies without thoughts (a model trained without them): every turn is a reply.
    assert trained_turns([call("ls"), call("ls")], "auto") == [True, True]


def test_encode_row_masks_context_turns(work):
    tok = AutoTokenizer.from_pretrained(work / "tiny")
    row = step_row(3)["messages"]
    enc = encode_row(row, tok, "auto")
    spans = label_spans(
        [t if m else -100 for t, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True)]
    )
    assert len(spans) == 1
    assert tok.decode(spans[0]) == row[-1]["content"] + "<|im_end|>"
    every = encode_row(row, tok, "all")
    assert every["input_ids"] == enc["input_ids"] and sum(every["assistant_masks"]) > sum(
        enc["assistant_masks"]
    )


def test_encode_row_rejects_template_without_matching_spans(work):
    tok = AutoTokenizer.from_pretrained(work / "tiny")
    tok.chat_template = (
        "{% generation %}{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}"
        "{% endgeneration %}"
    )
    with pytest.raises(UserError, match="loss_on=all"):
        encode_row(step_row(3)["messages"], tok, "auto")


def test_sft_trainer_trains_think_replies_and_saved_model_writes_think(work, monkeypatch):
    seen = {}

    class Recording(trl.SFTTrainer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            seen["trainer"] = self

    monkeypatch.setattr(trl, "SFTTrainer", Recording)
    cfg = load_sft_config(
        "sft_tiny.yaml",
        [
            f"model.path={work / 'tiny'}",
            f"data.path={work / 'steps.jsonl'}",
            f"output.dir={work / 'run'}",
            "train.max_steps=60",
            "train.learning_rate=5e-3",
            "output.save_steps=1000",
            "output.report_to=[none]",
            "output.plots=false",
        ],
    )
    summary = train_sft(cfg)

    # What the real SFTTrainer trains on: the expert's reply only, starting with <think>.
    tok = AutoTokenizer.from_pretrained(work / "tiny")
    think = tok.convert_tokens_to_ids("<think>")
    rows = seen["trainer"].train_dataset
    assert len(rows) == 16
    for row in rows:
        spans = label_spans(row["labels"])
        assert [s[0] for s in spans] == [think], tok.convert_ids_to_tokens([s[0] for s in spans])
        assert tok.decode(spans[0]).endswith("</function><|im_end|>")

    # The saved model writes the <think> block and a well-formed call, also on first-step prompts, where
    # most rows have a context turn (`<function=...`) right after the task.
    final = summary["final_model"]
    tok = AutoTokenizer.from_pretrained(final)
    model = AutoModelForCausalLM.from_pretrained(final).eval()
    for i in (0, 4, 8, 12):
        prompt = tok.apply_chat_template(
            step_row(i)["messages"][:-1], tokenize=False, add_generation_prompt=True
        )
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=48, do_sample=False, pad_token_id=tok.pad_token_id)
        text = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        assert text.startswith("<think>"), text
        assert extract_action(text) is not None, text


def test_qwen25_template_gets_trls_training_variant(work):
    """Qwen2.5's own template has no {% generation %} markers (only `add_generation_prompt`): the
    assistant-only loss takes TRL's render-identical training variant instead of failing."""
    from trl.chat_template_utils import qwen2_5_chat_template

    from swesrl.training.sft import has_generation_markers, training_chat_template

    tok = AutoTokenizer.from_pretrained(work / "tiny")
    tok.chat_template = qwen2_5_chat_template
    assert "generation" in qwen2_5_chat_template and not has_generation_markers(qwen2_5_chat_template)
    patched = training_chat_template(tok, "qwen")
    assert has_generation_markers(patched)
    row = step_row(3)["messages"]
    assert tok.apply_chat_template(row, tokenize=False) == tok.apply_chat_template(
        row, tokenize=False, chat_template=patched
    )
    tok.chat_template = patched
    enc = encode_row(row, tok, "auto")
    trained = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m]
    # TRL's variant opens the span at the newline after `assistant` (a prompt token at generation time)
    assert tok.decode(trained).strip() == row[-1]["content"] + "<|im_end|>"

    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(UserError, match="assistant_only_loss=false"):
        training_chat_template(tok, "odd-model")


def test_prompt_completion_rows_drawn_per_step_with_warmup_cosine(work, monkeypatch):
    """The demo's warm-up: step rows as prompt + completion (loss on the reply only), each step's rows
    drawn at random, a linear warm-up times a cosine decay; the same tokens and schedule as a plain loop."""
    seen = {}

    class Recording(trl.SFTTrainer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            seen["trainer"] = self

    monkeypatch.setattr(trl, "SFTTrainer", Recording)
    srl_rows = [
        {
            "prompt": step_row(i)["messages"][:-1],
            "expert_thought": f"look at {i % 3}",
            "expert_action": call(CMDS[(i + 3) % len(CMDS)]),
        }
        for i in range(10)
    ]
    rows = step_rows(srl_rows)
    assert rows[3]["completion"][0]["content"] == step_row(3)["messages"][-1]["content"]
    (work / "pc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    steps, batch = 5, 4
    cfg = SFTConfig.model_validate(
        {
            "model": {"path": str(work / "tiny"), "dtype": "float32"},
            "data": {"path": str(work / "pc.jsonl"), "order": "draws"},
            "train": {"learning_rate": 1e-3, "global_batch_size": batch, "micro_batch_size": 2,
                      "lr_scheduler_type": "warmup_cosine", "warmup_ratio": 0.4, "max_steps": steps,
                      "max_length": None, "seed": 3},
            "output": {"dir": str(work / "pc_run"), "save_steps": 100, "logging_steps": 1,
                       "report_to": ["none"], "plots": False},
        }
    )  # fmt: skip
    summary = train_sft(cfg)
    assert summary["global_step"] == steps
    trained = seen["trainer"].train_dataset
    order = draw_indices(len(rows), steps, batch, 3)
    assert len(trained) == steps * batch and all(
        len(set(order[i : i + batch])) == batch for i in range(0, 20, 4)
    )
    tok = AutoTokenizer.from_pretrained(work / "tiny")
    for row, j in zip(trained, order, strict=True):
        want = tok.apply_chat_template(
            rows[j]["prompt"] + rows[j]["completion"], tokenize=True, return_dict=True
        )
        prompt = tok.apply_chat_template(
            rows[j]["prompt"], tokenize=True, return_dict=True, add_generation_prompt=True
        )
        assert row["input_ids"] == want["input_ids"]
        reply = [t for t in row["labels"] if t != -100]
        assert reply == want["input_ids"][len(prompt["input_ids"]) :]
        assert tok.decode(reply).startswith("<think>") and "<|im_end|>" in tok.decode(reply)
    logged = [json.loads(line) for line in (work / "pc_run" / "metrics.jsonl").open()]
    lrs = [m["learning_rate"] for m in logged if "learning_rate" in m]
    assert lrs == pytest.approx([1e-3 * warmup_cosine(s, steps, 2) for s in range(steps)])
