import math

import torch

from swesrl.training.grpo import (
    assign_groups,
    dynamic_sampling_mask,
    gather_logps,
    group_advantages,
    group_transfers,
    kl_k3,
    masked_mean,
    policy_loss,
    refill_size,
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


def test_refill_size_asks_for_the_missing_prompts_at_the_keep_rate_split_over_processes():
    assert refill_size(n_kept=2, n_seen=4, target=4) == 5  # 2 missing at rate 0.5 -> 4, +1
    assert refill_size(n_kept=1, n_seen=100, target=4) == 13  # rate floored at 0.25: 3 / 0.25 + 1
    assert refill_size(n_kept=0, n_seen=4, target=4) == 16  # capped at 4 x B
    assert refill_size(n_kept=2, n_seen=4, target=4, num_processes=2) == 3  # 4 per process -> 2, +1
    assert refill_size(n_kept=0, n_seen=8, target=8, num_processes=4) == 8  # cap: 4 x B/P


def T(*rows):
    return torch.tensor(rows, dtype=torch.bool)


def test_assign_groups_one_process_is_kept_round_by_round_then_filtered():
    keeps = [T([True, False, True, False]), T([False, True, False])]  # (1, 4) then (1, 3)
    plan = assign_groups([k.view(1, -1) for k in keeps], 4)
    assert plan.shape == (1, 4, 3)
    assert plan[0].tolist() == [[0, 0, 0], [0, 0, 2], [1, 0, 1], [0, 0, 1]]  # 3 kept, then filler
    sends, receives = group_transfers(plan)
    assert sends == [[]] and receives == {}


def test_assign_groups_takes_the_globally_first_kept_and_moves_surplus_to_short_processes():
    # 2 processes x 2 groups. Round 0: process 0 keeps both, process 1 none; round 1: process 0
    # keeps both again, process 1 keeps its 2nd. Global first 4 kept: (0,0,0) (0,0,1) (1,0,0) (1,0,1).
    keeps = [T([True, True], [False, False]), T([True, True], [False, True])]
    plan = assign_groups(keeps, 2)
    assert plan[0].tolist() == [[0, 0, 0], [0, 0, 1]]  # process 0 holds its own first two
    assert plan[1].tolist() == [[1, 0, 0], [1, 0, 1]]  # the surplus moves to process 1
    sends, receives = group_transfers(plan)
    assert sends == [[(1, 0), (1, 1)], []]
    assert receives == {(1, 0): (0, 0), (1, 1): (0, 1)}
    # every chosen group appears exactly once and nothing filtered is used while kept ones exist
    flat = [tuple(x) for x in plan.view(-1, 3).tolist()]
    assert len(set(flat)) == 4 and all(keeps[r][p, g] for r, p, g in flat)


def test_assign_groups_fills_with_filtered_groups_and_keeps_own_groups_local():
    keeps = [T([False, False], [True, False]), T([False, False], [False, False])]
    plan = assign_groups(keeps, 2)
    # 1 kept group, then filtered ones in (round, process, group) order: (0,0,0) (0,0,1) (0,1,1)
    assert plan[1].tolist() == [[0, 1, 0], [0, 1, 1]]  # process 1: its kept group, then its own filler
    assert plan[0].tolist() == [[0, 0, 0], [0, 0, 1]]
    assert group_transfers(plan)[0] == [[], []]  # nothing moves


def test_assign_groups_three_processes_balanced_and_deterministic():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        P, n = 3, 4
        keeps = [torch.rand(P, n, generator=g) < 0.4 for _ in range(3)]
        plan = assign_groups(keeps, n)
        assert torch.equal(plan, assign_groups([k.clone() for k in keeps], n))
        flat = [tuple(x) for x in plan.view(-1, 3).tolist()]
        assert len(set(flat)) == P * n  # no group used twice
        n_kept = sum(int(k.sum()) for k in keeps)
        used_kept = sum(bool(keeps[r][p, gg]) for r, p, gg in flat)
        assert used_kept == min(n_kept, P * n)  # as many kept groups as exist, up to B
        sends, receives = group_transfers(plan)
        for (dst, slot), (src, i) in receives.items():
            r, p, gg = plan[dst, slot].tolist()
            assert p == src != dst and sends[src][i] == (r, gg)
