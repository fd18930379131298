"""The generation backends: the transformers decode loop (continuous batching over its KV cache) on the
tiny shipped checkpoint, against the model run on each prompt alone."""

from pathlib import Path

import pytest
import torch

from swesrl.training.generation import HFBackend, growing_layer_class
from swesrl.training.rollout import chat_ids
from swesrl.training.srl import ModelConfig, load_policy

TINY = Path(__file__).resolve().parents[2] / "swesrl" / "checkpoints" / "tiny-demo"


@pytest.fixture(scope="module")
def policy():
    return load_policy(ModelConfig(path=str(TINY)))


def test_prompts_that_join_a_running_batch_get_the_replies_they_would_get_alone(policy):
    """Continuous batching: rows leave when done, newcomers are prefilled and merged (left-padded) into
    the running KV cache; greedy replies and their log-probs equal those of each prompt on its own."""
    model, tok = policy
    texts = ["fix the bug in utils", "x", "the tests fail with a KeyError in parse()", "add a test"]
    prompts = [chat_ids(tok, [{"role": "user", "content": t}]) for t in texts]
    backend = HFBackend(model, tok, 40, temperature=0.0)
    alone = [backend.generate([p])[0] for p in prompts]
    later = [[prompts[2]], [], [], [prompts[3]]]  # one joins at step 1, one at step 4
    calls, finished = [], []

    def admit(running):
        calls.append(running)
        return later.pop(0) if later else []

    got = backend.generate(prompts[:2], on_done=lambda i, out: finished.append(i), admit=admit)
    assert sorted(finished) == [0, 1, 2, 3] and len(got) == 4
    for (ids, lps), (ids1, lps1) in zip(got, alone, strict=True):
        assert ids == ids1
        assert lps == pytest.approx(lps1, abs=1e-4)


def test_the_growing_kv_cache_gives_the_logits_of_the_stock_cache(policy):
    """The decode cache writes into a buffer instead of concatenating: past its headroom (it grows), after
    rows are dropped (it re-buffers) and across both, the logits are those of transformers' DynamicCache."""
    from transformers import DynamicCache

    model, _ = policy
    torch.manual_seed(0)
    ids = torch.randint(3, 1000, (3, 20))
    grow = growing_layer_class()
    caches = [DynamicCache(config=model.config) for _ in range(2)]
    caches[1].layers = [grow(16) for _ in caches[1].layers]  # headroom 16: grows twice in 40 steps
    outs = [[], []]
    with torch.inference_mode():
        for k, cache in enumerate(caches):
            tok = ids
            for step in range(40):
                if step == 25:  # a row finishes: the cache keeps the others
                    cache.batch_select_indices(torch.tensor([0, 2]))
                    tok = tok[[0, 2]]
                logits = model(input_ids=tok, cache=cache).logits[:, -1]
                outs[k].append(logits)
                tok = logits.argmax(-1)[:, None]
            assert cache.get_seq_length() == 20 + 39
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*outs, strict=True))
    assert isinstance(caches[1].layers[0], grow) and caches[1].layers[0]._kbuf.shape[-2] >= 59
