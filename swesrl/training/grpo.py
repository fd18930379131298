"""GRPO math as pure tensor functions (no trainer state), shared by the SRL trainer and the RLVR loop.

Shapes: N prompts, G rollouts per prompt, T completion tokens. Rewards arrive flat as (N*G,)
with each prompt's G rollouts consecutive (TRL's RepeatSampler order), or grouped as (N, G).
"""

from __future__ import annotations

import torch


def group_advantages(rewards: torch.Tensor, num_generations: int, scale: bool = True, eps: float = 1e-4):
    """GRPO advantages: reward minus its group's mean, optionally divided by the group's std.

    rewards: (N*G,) -> (N*G,). With `scale` (GRPO), A = (r - mean_g) / (std_g + eps); without
    (Dr. GRPO), A = r - mean_g. The std is the unbiased one, as in TRL.
    """
    grouped = rewards.view(-1, num_generations)  # (N, G)
    mean = grouped.mean(dim=1, keepdim=True)  # (N, 1)
    adv = grouped - mean  # (N, G)
    if scale:
        adv = adv / (grouped.std(dim=1, keepdim=True) + eps)
    return adv.reshape(-1)  # (N*G,)


def dynamic_sampling_mask(rewards: torch.Tensor, num_generations: int, epsilon: float = 1e-6) -> torch.Tensor:
    """The paper's filter: keep a prompt iff the std of its G rollout rewards is > epsilon.

    rewards: (N*G,) -> keep: (N,) bool. A group whose rollouts all scored the same carries no
    GRPO signal (every advantage is zero), so it is dropped and the batch is refilled.
    """
    grouped = rewards.view(-1, num_generations)  # (N, G)
    return grouped.std(dim=1, unbiased=False) > epsilon  # (N,)


def refill_size(n_kept: int, n_seen: int, target: int, num_processes: int = 1, min_rate: float = 0.25) -> int:
    """Prompts per process for the next dynamic-sampling round.

    n_kept of n_seen prompts (all processes) passed the filter so far; `target` = B, the prompts the
    step needs over all processes. Asks for the missing ones at the observed keep rate (at least
    `min_rate`), split evenly over the processes, plus one, capped at 4x a process's share of B.
    """
    missing = target - n_kept
    rate = max(n_kept / n_seen, min_rate)
    return min(int(missing / rate / num_processes) + 1, 4 * (target // num_processes))


def assign_groups(keeps: list[torch.Tensor], per_process: int) -> torch.Tensor:
    """Which groups form each process's batch after dynamic sampling (a pure function of the keep masks,
    so every process computes the same answer from the gathered rewards).

    keeps: one (P, n_r) bool tensor per generation round: P processes with n_r whole groups each, in
    TRL's gathered (process-major) order. The step takes the first P*per_process groups in the order
    kept groups by (round, process, group), then filtered groups in the same order (the zero-advantage
    filler when too few were kept). A process holds its own chosen groups (up to per_process); the
    other chosen groups move, in order, to the processes still short.
    Returns (P, per_process, 3) long: for each process's slot, the (round, process, group) it trains on.
    With P = 1 that is the kept groups round by round, then the filtered ones.
    """
    num_processes = keeps[0].shape[0]
    order = [
        (r, p, g)
        for want in (True, False)
        for r, keep in enumerate(keeps)
        for p in range(num_processes)
        for g in torch.nonzero(keep[p] == want).flatten().tolist()
    ]
    chosen = order[: num_processes * per_process]
    if len(chosen) < num_processes * per_process:
        raise ValueError(f"{len(chosen)} groups for {num_processes} processes x {per_process}")
    slots: list[list[tuple[int, int, int]]] = [[] for _ in range(num_processes)]
    movers = []
    for src in chosen:
        (slots[src[1]] if len(slots[src[1]]) < per_process else movers).append(src)
    movers.reverse()
    for own in slots:
        while len(own) < per_process:
            own.append(movers.pop())
    return torch.tensor(slots, dtype=torch.long).view(num_processes, per_process, 3)


def group_transfers(
    plan: torch.Tensor,
) -> tuple[list[list[tuple[int, int]]], dict[tuple[int, int], tuple[int, int]]]:
    """The moves `assign_groups` implies. plan: (P, S, 3) of (round, process, group) per slot.

    Returns (sends, receives): sends[q] lists the (round, group) that process q sends, ordered by
    destination process then slot; receives[(p, slot)] = (q, i) says that process p's slot holds
    the i-th group process q sends.
    """
    num_processes, n_slots, _ = plan.shape
    sends: list[list[tuple[int, int]]] = [[] for _ in range(num_processes)]
    receives: dict[tuple[int, int], tuple[int, int]] = {}
    for p in range(num_processes):
        for s in range(n_slots):
            r, q, g = plan[p, s].tolist()
            if q != p:
                receives[(p, s)] = (q, len(sends[q]))
                sends[q].append((r, g))
    return sends, receives


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of x over positions where mask is 1. x, mask: (B, T)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def kl_k3(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token KL(pi || ref) estimate k3 = exp(ref - logp) - (ref - logp) - 1 >= 0. (B, T) -> (B, T)."""
    d = ref_logps - logps
    return torch.exp(d) - d - 1


def policy_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
    ref_logps: torch.Tensor | None = None,
    beta: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped GRPO surrogate over the tokens where mask is 1, averaged over all such tokens (DAPO).

    logps, old_logps, ref_logps, mask: (B, T); advantages: (B,). The mask is where environment
    (observation) tokens are zeroed in multi-turn RLVR, so only the policy's own tokens are trained.
    """
    ratio = torch.exp(logps - old_logps)  # (B, T)
    adv = advantages.unsqueeze(1)  # (B, 1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv
    per_token = -torch.min(unclipped, clipped)  # (B, T)
    stats: dict[str, float] = {}
    if ref_logps is not None and beta != 0.0:
        kl = kl_k3(logps, ref_logps)  # (B, T)
        per_token = per_token + beta * kl
        stats["kl"] = masked_mean(kl.detach(), mask).item()
    loss = masked_mean(per_token, mask)
    stats["clip_fraction"] = masked_mean(((ratio - 1).abs() > clip_eps).float(), mask).item()
    return loss, stats


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the next-token distribution. logits: (B, T, V) -> (B, T)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def gather_logps(logits: torch.Tensor, ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probabilities of `ids` under `logits`. logits: (B, T, V), ids: (B, T) -> (B, T)."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
