"""The trainers' mask-free log-prob pass against TRL's own (padding mask), on a real trainer."""

import pytest
import torch
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from swesrl.agent.models import load_pretrained
from swesrl.training.logps import left_align
from swesrl.training.srl import make_trainer_class
from swesrl.training.tiny import build_tiny_model


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    d = tmp_path_factory.mktemp("logps")
    build_tiny_model(d / "tiny", seed=0)
    model, tok = load_pretrained(str(d / "tiny"), "float32", None)
    args = GRPOConfig(
        output_dir=str(d / "out"),
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=8,
        temperature=0.7,
        report_to="none",
        use_cpu=True,
        bf16=False,  # float32 throughout: the two passes must agree to rounding
    )
    rows = [{"prompt": [{"role": "user", "content": "hi"}]}] * 4
    return make_trainer_class()(
        model=model,
        reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
    )


def batch(rows=5, prompt=40, completion=12, seed=0):
    """TRL's layout: left-padded prompts of different lengths, right-padded completions."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 1000, (rows, prompt + completion), generator=g)
    mask = torch.ones_like(ids)
    for i in range(rows):
        mask[i, : 7 * i] = 0  # prompt padding
        mask[i, prompt + completion - 2 * i :] = 0 if i else 1  # completion padding
    return ids, mask


def both(trainer, ids, mask, k, **kw):
    trl_own = GRPOTrainer._get_per_token_logps_and_entropies(trainer, trainer.model, ids, mask, k, **kw)
    ours = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, k, **kw)
    return trl_own, ours


def test_log_probs_entropies_and_gradients_equal_trls(trainer):
    ids, mask = batch()
    assert left_align(ids, mask) is not None  # the mask-free pass is taken
    (lp_a, ent_a, _), (lp_b, ent_b, _) = both(trainer, ids, mask, 12, batch_size=2, compute_entropy=True)
    assert lp_a.shape == lp_b.shape == (5, 12)
    assert torch.allclose(lp_a, lp_b, atol=1e-4) and torch.allclose(ent_a, ent_b, atol=1e-4)
    assert (lp_b[mask[:, -12:] == 0] == 0).all() and (lp_b[mask[:, -12:] == 1] < 0).all()

    grads = []
    for fn in (
        GRPOTrainer._get_per_token_logps_and_entropies,
        type(trainer)._get_per_token_logps_and_entropies,
    ):
        trainer.model.zero_grad()
        fn(trainer, trainer.model, ids, mask, 12)[0].sum().backward()
        grads.append([p.grad.clone() for p in trainer.model.parameters()])
    scale = max(g.abs().max().item() for g in grads[0])
    assert scale > 0
    assert all(torch.allclose(a, b, atol=1e-5 * scale) for a, b in zip(*grads, strict=True))


def test_a_mask_with_a_gap_goes_trls_way(trainer):
    ids, mask = batch()
    mask[1, 30] = 0  # a hole inside a row: not one contiguous run
    assert left_align(ids, mask) is None
    (lp_a, _, _), (lp_b, _, _) = both(trainer, ids, mask, 12)
    assert torch.equal(lp_a, lp_b)


def test_the_fused_head_scores_only_the_completion_positions_on_cpu(trainer, monkeypatch):
    """On CPU TRL's fused LM head would project every position; in our pass it projects only the
    labelled ones (the completion tokens), which halved a CPU forward + backward."""
    import trl.trainer.utils as trl_utils

    from swesrl.training.logps import scored_positions_only

    assert hasattr(trl_utils, "_use_triton")  # the name the compact switch relies on (pinned TRL)
    cpu = torch.device("cpu")
    with scored_positions_only():
        assert trl_utils._use_triton(cpu)
    assert not trl_utils._use_triton(cpu)  # restored

    seen = []
    apply = trl_utils._ChunkedLogProbFunction.apply

    def spy(hidden, *args):
        seen.append(hidden.shape[0])
        return apply(hidden, *args)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", spy)
    ids, mask = batch()
    trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, 12)
    assert seen == [int(mask[:, -12:].sum())]  # the scored tokens, not rows x positions
