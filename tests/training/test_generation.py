"""The generation backends: the transformers decode loop (continuous batching over its KV cache) on the
tiny shipped checkpoint, against the model run on each prompt alone."""

from pathlib import Path

import pytest
import torch

from swesrl.training.generation import HFBackend, PrefixCache, VLLMServerBackend, growing_layer_class
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


def test_prompts_that_share_a_prefix_reuse_its_states_and_get_the_replies_they_would_get_alone(policy):
    """The prefix cache: a prompt that starts like an earlier one (the same task, a later turn; or the
    same first prompt in another episode) only prefills its new tokens, next to rows with no hit, and
    its greedy reply and log-probs are those of the prompt prefilled whole on its own."""
    model, tok = policy
    task = [
        {"role": "system", "content": "you fix bugs"},
        {"role": "user", "content": "the tests fail in parse()"},
    ]
    first = chat_ids(tok, task)
    later = chat_ids(
        tok, [*task, {"role": "assistant", "content": "ls"}, {"role": "user", "content": "a.py b.py"}]
    )
    other = chat_ids(tok, [{"role": "user", "content": "something else entirely"}])
    assert later[: len(first) - 2] == first[: len(first) - 2]
    alone = HFBackend(model, tok, 30, temperature=0.0, prefix_cache_tokens=0)
    want = {i: alone.generate([p])[0] for i, p in enumerate([first, later, other])}
    assert alone.reused_tokens == 0
    backend = HFBackend(model, tok, 30, temperature=0.0)
    got = [backend.generate([first])[0], *backend.generate([later, other, first])]
    assert backend.reused_tokens >= 2 * (len(first) - 3)  # `later` and the repeat of `first`
    assert backend.prefill_tokens < len(first) + len(later) + len(other)
    for (ids, lps), (ids1, lps1) in zip(got, [want[0], want[1], want[2], want[0]], strict=True):
        assert ids == ids1
        assert lps == pytest.approx(lps1, abs=1e-4)


def test_the_prefix_cache_keeps_the_most_recent_prompts_within_its_token_budget():
    cache = PrefixCache(max_tokens=20)
    kvs = [(torch.zeros(1, 1, 10, 2), torch.zeros(1, 1, 10, 2))]
    cache.add(list(range(10)), kvs)
    cache.add(list(range(100, 110)), kvs)
    assert cache.lookup(list(range(12)))[0] == 10
    cache.add(list(range(200, 210)), kvs)  # over budget: the least recently used entry goes
    assert cache.tokens == 20
    assert cache.lookup(list(range(100, 112)))[0] == 0
    assert cache.lookup([*range(9), 99])[0] == 9  # a common prefix, not the whole entry
    assert cache.lookup(list(range(10)))[0] == 9  # the last token always runs through the model
    assert cache.lookup(list(range(5)) + [7])[0] == 0  # under MIN_HIT


def test_the_vllm_server_backend_gives_the_ids_and_log_probs_of_the_model(vllm_served, policy):
    """RLVR's `VLLMServerBackend` against a real vLLM server (CPU) serving the shipped checkpoint:
    token ids in, sampled token ids and their log-probs out, several prompts in one request; greedy,
    they are the in-process decode loop's ids and log-probs."""
    model, tok = policy
    base = vllm_served.removeprefix("openai:").rpartition("#")[0].removesuffix("/v1")
    texts = ["fix the bug in utils", "the tests fail with a KeyError in parse()"]
    prompts = [chat_ids(tok, [{"role": "user", "content": t}]) for t in texts]
    served = VLLMServerBackend(base, 40, temperature=0.0).generate(prompts)
    local = HFBackend(model, tok, 40, temperature=0.0, prefix_cache_tokens=0).generate(prompts)
    for (ids, lps), (ids1, lps1) in zip(served, local, strict=True):
        assert ids == ids1 and len(lps) == len(ids)
        assert lps == pytest.approx(lps1, abs=1e-3)


def test_a_reply_stops_when_its_newest_tokens_complete_the_stop_string_and_not_before(policy):
    _, tok = policy
    backend = HFBackend(None, tok, 1000)

    def enc(*pieces):  # each piece tokenised alone: the stop string split over several tokens
        return [i for p in pieces for i in tok.encode(p, add_special_tokens=False)]

    split = enc("ls -la\n", "<", "/", "func", "tion", ">")
    assert tok.decode(split).endswith("</function>") and len(split) > 5
    assert backend._stopped(split)
    assert not any(backend._stopped(split[:k]) for k in range(1, len(split)))
    whole = enc("ls", "</function>")
    assert backend._stopped(whole) and not backend._stopped(whole[:1])
    assert not backend._stopped(enc("a > b </function"))


@pytest.mark.parametrize("lean", [True, False])
def test_drafted_tokens_leave_greedy_replies_as_they_are_in_fewer_forwards(policy, lean):
    """Prompt-lookup drafts verified in the decode forward (both model paths), with prompts joining
    the running batch: the same greedy replies and log-probs as one token per forward, and accepted
    drafts save forwards."""
    model, tok = policy
    texts = [
        "fix the bug in utils utils utils",
        "x",
        "the tests fail with a KeyError in parse()",
        "a",
        "fix it",
    ]
    prompts = [chat_ids(tok, [{"role": "user", "content": t}]) for t in texts]
    got, steps = {}, {}
    for k in (0, 4):
        backend = HFBackend(model, tok, 120, temperature=0.0, lean=lean, draft_tokens=k)
        later = [[prompts[2]], [], [prompts[3], prompts[4]]]
        got[k] = backend.generate(prompts[:2], admit=lambda n, later=later: later.pop(0) if later else [])
        steps[k] = backend.decode_steps
        assert (backend.drafted > 0) is (k > 0) and backend.accepted <= backend.drafted
    assert len(got[4]) == 5
    for (ids, lps), (ids4, lps4) in zip(got[0], got[4], strict=True):
        assert ids == ids4
        assert lps == pytest.approx(lps4, abs=1e-4)
    assert steps[4] < steps[0]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_verified_drafts_are_sampled_exactly_from_the_model_distribution(policy, temperature):
    """Speculative sampling with a one-token draft: the first settled token is distributed as p0 (the
    draft is kept with probability p0(draft), else a token is drawn from p0 without it) and the token
    after an accepted draft as p1; log-probs are those of softmax(logits / temperature)."""
    _, tok = policy
    torch.manual_seed(0)
    backend = HFBackend(None, tok, 100, temperature=temperature, draft_tokens=1)
    raw = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 3.0, 1.0, 0.5]])  # position 0, position after draft
    rows, draft = 40000, 1
    logits = raw[None].expand(rows, -1, -1).contiguous()
    taken, accepted = backend._verify(logits, [[draft]] * rows)
    p0, p1 = (torch.softmax(raw / temperature, -1)[i] for i in (0, 1))
    first = torch.tensor([t[0][0] for t in taken])
    freq0 = torch.bincount(first, minlength=4).float() / rows
    assert torch.allclose(freq0, p0, atol=0.012), (freq0, p0)
    kept = [t for t, a in zip(taken, accepted, strict=True) if a == 1]
    assert all(len(t) == 2 for t in kept) and all(
        len(t) == 1 for t, a in zip(taken, accepted, strict=True) if a == 0
    )
    second = torch.tensor([t[1][0] for t in kept])
    freq1 = torch.bincount(second, minlength=4).float() / len(kept)
    assert torch.allclose(freq1, p1, atol=0.012), (freq1, p1)
    logp0, logp1 = torch.log(p0), torch.log(p1)
    assert all(abs(t[0][1] - logp0[t[0][0]].item()) < 1e-5 for t in taken[:200])
    assert all(abs(t[1][1] - logp1[t[1][0]].item()) < 1e-5 for t in kept[:200])


def test_ngram_drafts_continue_the_latest_earlier_occurrence():
    from swesrl.training.generation import NgramDrafter

    d = NgramDrafter([5, 6, 7, 8, 9, 5, 6, 1, 2])
    assert d.draft(3) == []  # "1 2": 2 never occurred before
    d.extend([5, 6])
    assert d.draft(3) == [1, 2, 5]  # "2 5 6" is new, "5 6" last continued with 1 2 (not 7 8)
    d.extend([7])
    assert d.draft(2) == [8, 9]  # "5 6 7": the longest match wins
    assert d.draft(0) == []


def test_rejected_drafts_leave_no_trace_in_the_cache():
    """A model with sharp attention (random Qwen3, large q/k norms), so that a key the mask forgot
    would change the replies: rejected drafts stay in the cache as holes that nothing attends to."""
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen3Config(
        vocab_size=1039,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
    )
    model = Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "q_norm" in name or "k_norm" in name:
                p.fill_(4.0)
    tok = AutoTokenizer.from_pretrained(TINY)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 40, (n,), generator=g).tolist() for n in (30, 45, 12)]  # repeats: drafts
    got = {}
    for k in (0, 3):
        backend = HFBackend(model, tok, 40, temperature=0.0, draft_tokens=k)
        backend._stopped = lambda row: len(row) >= 40
        got[k] = backend.generate(prompts)
        if k:
            assert backend.drafted - backend.accepted > 20  # many rejected drafts
    for (ids, lps), (ids3, lps3) in zip(got[0], got[3], strict=True):
        assert ids == ids3
        assert lps == pytest.approx(lps3, abs=1e-4)


def test_the_sampler_draws_tokens_in_proportion_and_never_a_zero_one():
    from swesrl.training.generation import sample_tokens

    torch.manual_seed(0)
    weights = torch.tensor([0.0, 3.0, 0.0, 1.0, 0.5, 0.0])  # unnormalised, as top-p leaves them
    drawn = sample_tokens(weights.expand(60000, -1).contiguous())
    freq = torch.bincount(drawn, minlength=6).float() / len(drawn)
    assert torch.allclose(freq, weights / weights.sum(), atol=0.01), freq
    assert freq[[0, 2, 5]].sum() == 0
