"""The lean decode step against the transformers forward it replaces: the same logits over many decode
steps of a left-padded batch whose rows leave, for each architecture it accepts; the forward itself
for what it does not accept."""

from pathlib import Path

import pytest
import torch

from swesrl.training.decode_step import lean_decoder
from swesrl.training.generation import HFBackend, growing_layer_class
from swesrl.training.rollout import chat_ids
from swesrl.training.srl import ModelConfig, load_policy

TINY = Path(__file__).resolve().parents[2] / "swesrl" / "checkpoints" / "tiny-demo"


def random_model(kind: str):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    shape = dict(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2)
    if kind == "qwen3":  # per-head q/k norms, grouped-query attention, head_dim not hidden/heads
        cfg = Qwen3Config(**shape, num_attention_heads=4, num_key_value_heads=2, head_dim=24)
        model = Qwen3ForCausalLM(cfg)
    else:  # grouped-query attention, a scaled rope
        rope = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
        cfg = LlamaConfig(**shape, num_attention_heads=4, num_key_value_heads=1, rope_parameters=rope)
        model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # norms away from 1 so a missing or misplaced norm shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def qwen2():
    return load_policy(ModelConfig(path=str(TINY)))[0]


def decode_both(model, steps: int = 30, drop_at: int = 12):
    """Logits of `steps` decode steps of 3 left-padded rows (fed the same random tokens; the middle one
    leaves at `drop_at`), through the model's forward and through the lean step, each on its own
    growing KV cache (headroom 8: it re-buffers as it grows and after the drop)."""
    from transformers import DynamicCache

    lean = lean_decoder(model)
    assert lean is not None
    torch.manual_seed(1)
    lens = [9, 17, 4]
    width = max(lens)
    vocab = model.config.vocab_size
    ids = torch.tensor([[0] * (width - n) + torch.randint(3, vocab, (n,)).tolist() for n in lens])
    attn0 = torch.tensor([[0] * (width - n) + [1] * n for n in lens])
    pos0 = (attn0.cumsum(-1) - 1).clamp(min=0)
    tokens = torch.randint(3, vocab, (steps, 3))
    out = {}
    with torch.inference_mode():
        for path in ("forward", "lean"):
            cache = DynamicCache(config=model.config)
            cache.layers = [growing_layer_class()(8) for _ in cache.layers]
            logits = model(input_ids=ids, attention_mask=attn0, position_ids=pos0, cache=cache).logits[:, -1]
            attn, pos, got = attn0, pos0[:, -1] + 1, []
            for step in range(steps):
                keep = torch.tensor([0, 2])
                token = tokens[step] if step < drop_at else tokens[step][keep]
                if step == drop_at:  # the middle row finishes
                    cache.batch_select_indices(keep)
                    attn, pos = attn[keep], pos[keep]
                attn = torch.cat([attn, attn.new_ones(len(attn), 1)], 1)
                if path == "forward":
                    logits = model(
                        input_ids=token[:, None], attention_mask=attn, position_ids=pos[:, None], cache=cache
                    ).logits[:, -1]
                else:
                    logits = lean.step(token[:, None], attn, pos[:, None], cache)[:, -1]
                got.append(logits.clone())
                pos = pos + 1
            out[path] = got
    return out["forward"], out["lean"]


@pytest.mark.parametrize("kind", ["qwen2", "qwen3", "llama"])
def test_the_lean_step_gives_the_logits_of_the_model_forward(kind, qwen2):
    model = qwen2 if kind == "qwen2" else random_model(kind)
    ref, lean = decode_both(model)
    assert len(ref) == len(lean) == 30
    for step, (a, b) in enumerate(zip(ref, lean, strict=True)):
        assert a.shape == b.shape, step
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-5), (step, (a - b).abs().max())
    assert ref[0].std() > 0.01  # the logits are not degenerate (a wrong step could match those)


def test_the_lean_step_in_bfloat16_matches_the_bfloat16_forward(qwen2):
    model = load_policy(ModelConfig(path=str(TINY), dtype="bfloat16"))[0]
    ref, lean = decode_both(model, steps=10)
    for a, b in zip(ref, lean, strict=True):
        assert a.dtype == b.dtype == torch.bfloat16
        assert torch.allclose(a.float(), b.float(), atol=2e-2), (a.float() - b.float()).abs().max()


def test_architectures_the_step_does_not_reproduce_decode_through_the_model(qwen2):
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

    assert lean_decoder(qwen2) is not None
    assert lean_decoder(GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))) is None
    small = dict(vocab_size=50, hidden_size=32, intermediate_size=64, num_attention_heads=2)
    sliding = Qwen2Config(
        **small, num_hidden_layers=2, use_sliding_window=True, sliding_window=16, max_window_layers=0
    )
    assert lean_decoder(Qwen2ForCausalLM(sliding)) is None
    rope = {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}  # frequencies grow with length
    dynamic = Qwen2Config(**small, num_hidden_layers=1, rope_parameters=rope)
    assert lean_decoder(Qwen2ForCausalLM(dynamic)) is None
    assert lean_decoder(None) is None


def test_the_backend_samples_the_same_replies_with_and_without_the_lean_step(qwen2):
    """The whole decode loop (prefix cache, rows leaving, newcomers merged): greedy replies and their
    log-probs with the lean step are those of the model's forward."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(TINY)
    texts = ["fix the bug in utils", "x", "the tests fail with a KeyError in parse()"]
    prompts = [chat_ids(tok, [{"role": "user", "content": t}]) for t in texts]
    got = {}
    for lean in (False, True):
        backend = HFBackend(qwen2, tok, 48, temperature=0.0, lean=lean)
        assert (backend.lean is not None) is lean
        later = [[prompts[2]], [], []]
        got[lean] = backend.generate(prompts[:2], admit=lambda n, later=later: later.pop(0) if later else [])
    assert len(got[True]) == 3
    for (ids, lps), (ids1, lps1) in zip(got[False], got[True], strict=True):
        assert ids == ids1 and len(ids) > 5
        assert lps == pytest.approx(lps1, abs=1e-5)
