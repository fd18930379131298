"""Step-wise SRL instances from normalised trajectories, built by the agent's own prompt code.

At step k the agent loop holds `[system, task, assistant_0, observation_0, ..., observation_{k-1}]`
(`swesrl.agent.loop.initial_messages` + `render_observation`) and sends
`select_context(messages, config.context)`; a step instance's `prompt` is exactly that list, and its
target is the expert's step-k action (`expert_action`, canonical XML) and reasoning (`expert_thought`).

Assistant turns in the history are the expert's reply verbatim where it was written in our XML
format (SWE-smith, this project), else `<think>\\nTHOUGHT\\n</think>\\nACTION` (the format the
agent's system prompt asks for). Observations can be clipped to a token budget with the real
tokenizer, keeping head and tail; a prompt over `max_prompt_tokens` has its longest observations
clipped until it fits, or is dropped.
"""

from __future__ import annotations

import logging
from typing import Any

from swesrl.agent.context import ContextPolicy, select_context
from swesrl.agent.loop import initial_messages, load_agent_config, render_format_error, render_observation
from swesrl.core.actions import FormatError, parse_action
from swesrl.core.trajectories import Dropped, Step, Trajectory
from swesrl.envs.base import Observation

log = logging.getLogger(__name__)

TRUNCATION_NOTE = "\n[... {n} tokens omitted ...]\n"
MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens a chat template adds around one message (`<|im_start|>role\\n ... <|im_end|>\\n`)."""


def assistant_turn(thought: str, action: str) -> str:
    """The reply the agent's system prompt asks for: reasoning in <think> tags, then one call."""
    return f"<think>\n{thought}\n</think>\n{action}" if thought else action


def task_instance(traj: Trajectory, instance: dict | None = None) -> dict:
    """The instance the agent's task template renders: the real one when known, else one built from the trajectory."""
    base = {
        "instance_id": traj["instance_id"],
        "problem_statement": traj["task"],
        "repo": "",
        "base_commit": "",
    }
    return {**base, **(instance or {})}


class TokenBudget:
    """Counts and clips text with a tokenizer (head and tail kept, exact substrings of the original)."""

    def __init__(self, tokenizer: Any):
        self.tok = tokenizer

    def count(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False)["input_ids"])

    def count_messages(self, messages: list[dict]) -> int:
        return sum(self.count(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)

    def clip(self, text: str, max_tokens: int) -> str:
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
        n = len(enc["input_ids"])
        if n <= max_tokens:
            return text
        offsets = enc["offset_mapping"]
        keep = max(max_tokens - self.count(TRUNCATION_NOTE.format(n=n)), 0)
        while True:
            head, tail = (keep + 1) // 2, keep // 2
            head_end = offsets[head - 1][1] if head else 0
            tail_start = offsets[n - tail][0] if tail else len(text)
            clipped = text[:head_end] + TRUNCATION_NOTE.format(n=n - head - tail) + text[tail_start:]
            # the pieces can tokenize differently once joined (merges across the seams): re-count
            over = self.count(clipped) - max_tokens
            if over <= 0 or keep == 0:
                return clipped
            keep = max(keep - over, 0)


def agent_messages(
    traj: Trajectory,
    config: Any,
    instance: dict | None = None,
    system_prompt: str | None = None,
    budget: TokenBudget | None = None,
    max_observation_tokens: int | None = None,
) -> list[dict]:
    """The whole episode as the agent loop's message list: `[system, task, (assistant, observation)*]`."""

    messages = initial_messages(config, task_instance(traj, instance))
    if system_prompt is not None:
        messages[0]["content"] = system_prompt
    verbatim = traj.get("observation_messages") or [None] * len(traj["steps"])
    for step, response, seen in zip(traj["steps"], traj["responses"], verbatim, strict=True):
        content = (
            response if response is not None else assistant_turn(step.thought, step.action or step.raw_action)
        )
        messages.append({"role": "assistant", "content": content})
        if seen is not None:
            obs = seen
        elif step.action is None and response is not None:
            try:
                parse_action(response)
                obs = render_observation(config, Observation(step.observation, 0))
            except FormatError as e:
                obs = render_format_error(config, str(e))
        else:
            obs = render_observation(config, Observation(step.observation, 0))
        if budget is not None and max_observation_tokens:
            obs = budget.clip(obs, max_observation_tokens)
        messages.append({"role": "user", "content": obs})
    return messages


def _fit(prompt: list[dict], budget: TokenBudget, max_tokens: int) -> list[dict] | None:
    """Clip the longest observations of the prompt until it fits `max_tokens`; None if it cannot."""
    total = budget.count_messages(prompt)
    if total <= max_tokens:
        return prompt
    obs_idx = [i for i in range(2, len(prompt)) if prompt[i]["role"] == "user"]
    sizes = {i: budget.count(prompt[i]["content"]) for i in obs_idx}
    fixed = total - sum(sizes.values())
    room = max_tokens - fixed
    if room <= 0 or not obs_idx:
        return None
    # water-filling: the largest cap c with sum(min(size, c)) <= room
    cap, lo, hi = 0, 0, max(sizes.values())
    while lo <= hi:
        mid = (lo + hi) // 2
        if sum(min(s, mid) for s in sizes.values()) <= room:
            cap, lo = mid, mid + 1
        else:
            hi = mid - 1
    out = [dict(m) for m in prompt]
    for i in obs_idx:
        if sizes[i] > cap:
            out[i]["content"] = budget.clip(out[i]["content"], cap)
    return out if budget.count_messages(out) <= max_tokens else None


def build_step_instances(
    traj: Trajectory,
    policy: ContextPolicy,
    system_prompt: str | None = None,
    tokenizer: Any = None,
    max_prompt_tokens: int | None = None,
    *,
    config: Any = None,
    instance: dict | None = None,
    max_observation_tokens: int | None = None,
    skip_submit: bool = False,
    max_steps: int | None = None,
    messages: list[dict] | None = None,
) -> tuple[list[dict], list[Dropped]]:
    """SRL rows `{instance_id, step, n_steps, prompt, expert_action, expert_thought}` and the steps left out.

    `config` is the agent's `AgentConfig` (default: the bundled `agent.yaml`); `policy` overrides its
    context policy. Steps without a usable action are context only; `skip_submit` leaves out `submit`
    steps; `max_steps` keeps the first N steps of each trajectory.
    """
    if config is None:
        config = load_agent_config()
    budget = TokenBudget(tokenizer) if tokenizer is not None else None
    if messages is None:
        messages = agent_messages(traj, config, instance, system_prompt, budget, max_observation_tokens)
    steps: list[Step] = traj["steps"]
    n_steps = len(steps)
    rows: list[dict] = []
    dropped: list[Dropped] = []
    where = f"{traj['source']} ({traj['instance_id']})"
    for k, step in enumerate(steps):
        if max_steps is not None and k >= max_steps:
            dropped.append(
                Dropped(f"{where} step {k}", "over_max_steps", f"steps after {max_steps} are skipped")
            )
            continue
        if step.action is None:
            dropped.append(Dropped(f"{where} step {k}", "no_action", "the expert turn holds no usable call"))
            continue
        if skip_submit and step.action.startswith("<function=submit>"):
            dropped.append(Dropped(f"{where} step {k}", "submit_skipped", "--skip-submit"))
            continue
        prompt = select_context(messages[: 2 + 2 * k], policy)
        if max_prompt_tokens and budget is not None:
            fitted = _fit(prompt, budget, max_prompt_tokens)
            if fitted is None:
                dropped.append(
                    Dropped(
                        f"{where} step {k}",
                        "prompt_too_long",
                        f"over {max_prompt_tokens} tokens without observations",
                    )
                )
                continue
            prompt = fitted
        rows.append(
            {
                "instance_id": traj["instance_id"],
                "step": k,
                "n_steps": n_steps,
                "prompt": prompt,
                "expert_action": step.action,
                "expert_thought": step.thought,
            }
        )
    return rows, dropped


def sft_conversation(messages: list[dict], traj: Trajectory) -> dict:
    """A multi-turn SFT example: the episode with every assistant turn as `<think>` + the canonical call.

    Turns without a usable action are left out with their feedback."""
    out = messages[:2]
    for k, step in enumerate(traj["steps"]):
        if step.action is None:
            continue
        out.append({"role": "assistant", "content": assistant_turn(step.thought, step.action)})
        if k + 1 < len(traj["steps"]):
            out.append(messages[3 + 2 * k])
    while len(out) > 2 and out[-1]["role"] != "assistant":
        out.pop()
    return {"instance_id": traj["instance_id"], "messages": out}
