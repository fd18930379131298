"""A tiny Qwen2-architecture model built locally: tests, the demo and CPU benchmarks use it offline.

`build_tiny_model(out_dir)` trains a byte-level BPE tokenizer on bundled text (the package's own
Python sources plus example agent turns), adds the chat and action tags as single tokens, wraps it
as a `PreTrainedTokenizerFast` with a Qwen-style chat template (with `{% generation %}` markers so
TRL's `assistant_only_loss` works), creates a randomly initialised (seeded) `Qwen2ForCausalLM` and
saves both with `save_pretrained`. Load it back with `AutoTokenizer` / `AutoModelForCausalLM`.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

from swesrl.utils import UserError

log = logging.getLogger(__name__)

SHIPPED_CHECKPOINT = Path(__file__).parent.parent / "checkpoints" / "tiny-demo"
"""The demo's starting checkpoint, made by `scripts/pretrain_tiny.py`."""

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ACTION_TOKENS = [
    "<think>",
    "</think>",
    "<function=",
    "</function>",
    "<parameter=",
    "</parameter>",
    "bash>",
    "str_replace_editor>",
    "submit>",
    "command>",
    "path>",
    "old_str>",
    "new_str>",
    "file_text>",
    "OBSERVATION:\n",
]

# Qwen2.5's layout; the assistant turn is wrapped in generation markers for assistant-only losses.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- generation -%}{{ message['content'] + '<|im_end|>' }}{%- endgeneration -%}"
    "{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

_EXAMPLE_TURNS = [
    "<think>Let me look at the repository layout first.</think>\n<function=bash>\n"
    "<parameter=command>ls -la /testbed</parameter>\n</function>",
    "<think>The failing test imports the module; read it.</think>\n<function=str_replace_editor>\n"
    "<parameter=command>view</parameter>\n<parameter=path>/testbed/src/pkg/core.py</parameter>\n</function>",
    "<think>The slice drops the first element.</think>\n<function=str_replace_editor>\n"
    "<parameter=command>str_replace</parameter>\n<parameter=path>/testbed/src/pkg/core.py</parameter>\n"
    "<parameter=old_str>    return items[1:]</parameter>\n<parameter=new_str>    return items[:]</parameter>\n"
    "</function>",
    "<think>Run the tests to confirm the fix.</think>\n<function=bash>\n"
    "<parameter=command>cd /testbed && python3 -m pytest -q tests/test_core.py</parameter>\n</function>",
    "<think>Done.</think>\n<function=submit>\n</function>",
    "OBSERVATION:\nYour command ran successfully and did not produce any output.",
    "OBSERVATION:\n1 passed in 0.01s",
    "<|im_start|>system\nYou are a helpful assistant that can interact with a computer to solve tasks.<|im_end|>",
    "<|im_start|>user\n<uploaded_files>\n/testbed\n</uploaded_files>\nConsider the following PR description:"
    " fix the off-by-one error in the parser.<|im_end|>",
]


def default_corpus() -> list[str]:
    """The package's Python sources (sorted, so the tokenizer is reproducible) plus example turns."""
    root = Path(__file__).resolve().parents[1]
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(root.rglob("*.py"))]
    return texts + _EXAMPLE_TURNS * 20


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024):
    """A byte-level BPE `PreTrainedTokenizerFast` with chat/action tags as single tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>"],
        model_max_length=32768,
    )
    fast.add_tokens(ACTION_TOKENS)
    fast.chat_template = CHAT_TEMPLATE
    return fast


HALF_B_SHAPE = dict(
    vocab_size=16384,
    hidden_size=1024,
    num_layers=24,
    num_heads=16,
    intermediate_size=5632,
    max_position_embeddings=8192,
)
"""~0.5B parameters (Qwen2.5-0.5B-like depth and MLP ratio): the random-init model of the GPU benches."""


def build_tiny_model(
    out_dir: str | Path,
    texts: Iterable[str] | None = None,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 16384,
) -> Path:
    """Train a tokenizer, build a random seeded Qwen2 model, save both to `out_dir`; return it."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(default_corpus() if texts is None else texts, vocab_size=vocab_size)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=True
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    n = sum(p.numel() for p in model.parameters())
    log.info("tiny model: %d parameters, vocab %d -> %s", n, len(tokenizer), out)
    return out


def count_parameters(path: str | Path) -> int:
    """Parameters of a saved Qwen2-architecture model, from its config.json alone."""
    cfg = json.loads((Path(path) / "config.json").read_text())
    h, n_layers, v = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    inter = cfg["intermediate_size"]
    kv = h // cfg["num_attention_heads"] * cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    per_layer = h * h * 2 + 2 * h * kv + 3 * h * inter + 2 * h + h + 2 * kv
    return v * h + n_layers * per_layer + h + (0 if cfg.get("tie_word_embeddings", True) else v * h)


def starting_model(dest: str | Path, checkpoint: str, texts: Iterable[str], seed: int = 0) -> dict:
    """Put the starting policy in `dest`: a copy of the shipped checkpoint (`shipped`) or of a model
    folder, or (`scratch`, or `shipped` when none is shipped) a fresh tiny model whose tokenizer is
    trained on `texts`. Returns {path, source, parameters}."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    if checkpoint == "scratch" or (
        checkpoint == "shipped" and not (SHIPPED_CHECKPOINT / "config.json").is_file()
    ):
        if checkpoint == "shipped":
            log.warning("no shipped checkpoint at %s; starting from a fresh tiny model", SHIPPED_CHECKPOINT)
        build_tiny_model(
            dest,
            texts=list(texts),
            seed=seed,
            hidden_size=128,
            num_layers=4,
            intermediate_size=384,
            max_position_embeddings=4096,
        )
        source = "scratch"
    else:
        src = SHIPPED_CHECKPOINT if checkpoint == "shipped" else Path(checkpoint)
        if not (src / "config.json").is_file():
            raise UserError(f"model checkpoint not found: {src} (expected a folder with config.json)")
        shutil.copytree(src, dest)
        source = str(src)
    return {"path": str(dest), "source": source, "parameters": count_parameters(dest)}
