import math

import torch

from swesrl.training.grpo import (
    dynamic_sampling_mask,
    gather_logps,
    group_advantages,
    kl_k3,
    masked_mean,
    policy_loss,
    token_entropy,
)


def test_group_advantages():
    r = torch.tensor([1.0, 0.0, 0.5, 0.5, 2.0, 2.0])  # 3 prompts x 2 rollouts
    plain = group_advantages(r, 2, scale=False)
    assert torch.allclose(plain, torch.tensor([0.5, -0.5, 0.0, 0.0, 0.0, 0.0]))
    scaled = group_advantages(r, 2, scale=True)
    std = math.sqrt(0.5)  # unbiased std of (1, 0)
    assert torch.allclose(scaled[:2], torch.tensor([0.5, -0.5]) / (std + 1e-4))
    assert torch.equal(scaled[2:], torch.zeros(4))


def test_dynamic_sampling_mask():
    r = torch.tensor([-1.0, -1.0, -1.0, 0.2, 0.2, 0.2, 0.2, 0.3, 0.9, 0.9, 0.9, 0.9 + 1e-9])
    keep = dynamic_sampling_mask(r, 3)
    assert keep.tolist() == [False, False, True, False]
    assert dynamic_sampling_mask(r, 3, epsilon=0.5).tolist() == [False, False, False, False]


def test_masked_mean_and_kl():
    x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]])
    m = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert masked_mean(x, m).item() == 2.0
    assert masked_mean(x, m, dim=1).tolist() == [1.5, 3.0]
    lp = torch.log(torch.tensor([[0.5, 0.2]]))
    assert torch.equal(kl_k3(lp, lp), torch.zeros(1, 2))
    assert (kl_k3(lp, torch.log(torch.tensor([[0.3, 0.6]]))) > 0).all()


def test_policy_loss_on_policy_is_minus_mean_advantage_and_masks_tokens():
    logps = torch.log(torch.tensor([[0.5, 0.4, 0.9], [0.2, 0.3, 0.9]])).requires_grad_()
    adv = torch.tensor([1.0, -2.0])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    loss, stats = policy_loss(logps, logps.detach(), adv, mask)
    assert math.isclose(loss.item(), -(1 + 1 - 2) / 3, abs_tol=1e-6)
    assert stats["clip_fraction"] == 0.0
    loss.backward()
    assert logps.grad[0, 2] == 0 and logps.grad[1, 1] == 0 and logps.grad[1, 2] == 0  # masked tokens
    assert logps.grad[0, 0] < 0 < logps.grad[1, 0]  # raise the good rollout, lower the bad one


def test_policy_loss_clips_and_adds_kl():
    old = torch.zeros(1, 2)
    new = torch.tensor([[math.log(2.0), 0.0]])
    loss, stats = policy_loss(new, old, torch.tensor([1.0]), torch.ones(1, 2), clip_eps=0.2)
    assert math.isclose(loss.item(), -(1.2 + 1.0) / 2, rel_tol=1e-6) and stats["clip_fraction"] == 0.5
    loss_kl, stats = policy_loss(new, old, torch.tensor([1.0]), torch.ones(1, 2), ref_logps=old, beta=0.1)
    assert loss_kl > loss and stats["kl"] > 0


def test_entropy_and_logps():
    logits = torch.zeros(1, 2, 4)
    assert torch.allclose(token_entropy(logits), torch.full((1, 2), math.log(4)))
    assert torch.allclose(gather_logps(logits, torch.tensor([[0, 3]])), torch.full((1, 2), -math.log(4)))
