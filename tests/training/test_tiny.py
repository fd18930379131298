import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from swesrl.training.tiny import ACTION_TOKENS, build_tiny_model


def test_tiny_model_roundtrip(tmp_path):
    path = build_tiny_model(tmp_path / "tiny", seed=3)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == "qwen2"
    assert 100_000 < sum(p.numel() for p in model.parameters()) < 5_000_000
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id is not None
    for tag in ACTION_TOKENS[:6]:
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1, tag
    call = "<think>x</think>\n<function=bash>\n<parameter=command>ls -la</parameter>\n</function>"
    assert tok.decode(tok(call, add_special_tokens=False)["input_ids"]) == call

    msgs = [{"role": "system", "content": "sys"}, {"role": "user", "content": "fix it"}]
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert (
        prompt
        == "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nfix it<|im_end|>\n<|im_start|>assistant\n"
    )
    full = tok.apply_chat_template(
        [*msgs, {"role": "assistant", "content": call}], return_dict=True, return_assistant_tokens_mask=True
    )
    kept = [i for i, m in zip(full["input_ids"], full["assistant_masks"], strict=True) if m]
    assert tok.decode(kept) == call + "<|im_end|>"

    enc = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > enc["input_ids"].shape[1]


def test_tiny_model_is_seeded(tmp_path):
    a = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "a", texts=["abc def"] * 50, seed=1))
    b = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "b", texts=["abc def"] * 50, seed=1))
    c = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "c", texts=["abc def"] * 50, seed=2))
    wa, wb, wc = (m.model.embed_tokens.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
