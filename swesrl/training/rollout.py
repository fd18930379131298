"""Multi-turn agent episodes as exact token sequences, many at once (the RLVR rollout).

Every episode is `swesrl.agent.loop.run_agent` in its own sandbox, in its own thread; the model it
talks to is an `EpisodePolicy`, which turns each query into token ids, hands them to a shared
`TurnEngine` and blocks. The engine runs in the caller's thread and generates the next turn of every
waiting episode together: one batched decode over the transformers model's KV cache (a finished
reply leaves the batch and its episode goes on at once) or one `LLM.generate` (vLLM colocate) call;
with a vLLM server every episode's request goes out at once and the server batches them (the
backends are in `swesrl.training.generation`). An episode that ends (submits, hits a limit,
crashes) leaves the engine, so nobody waits for it.

Token-in/token-out: each turn records the prompt ids the model was given, the ids it sampled and
their sampling log-probs; the agent loop only sees the decoded text. Nothing the policy wrote is
tokenised again for training:
- `full` context: the prompt of turn t is the prompt of turn t-1, its sampled ids, then the new
  messages (observation or format-error feedback) rendered by the chat template once and tokenised
  once (`delta_ids`). An episode is one sequence, `Turn.prompt_ids[0]` then every sampled id and
  observation id in order; `env_mask` is 1 on sampled ids, 0 on observation/template ids.
- `srl` context (task + last k steps, earlier thoughts dropped): every turn's prompt is a new
  rendering of that window, tokenised once when the turn is generated; the turn is one sample,
  those prompt ids (masked out) plus the sampled ids. An episode is as many samples as turns.

Failures: a sandbox that cannot start, an agent crash, a grading error or timeout, or an episode
past its wall-clock limit gives reward 0 and a reason (`Episode.status`, `Episode.error`); the other
episodes go on. Sandbox starts and gradings are each limited to `max_concurrent_sandboxes` at once;
an episode's first turn (its prompt needs only the task) is generated while its sandbox starts.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from swesrl.agent.loop import run_agent
from swesrl.agent.models import cut_at_stop
from swesrl.agent.prompts import AgentConfig
from swesrl.config import StrictModel
from swesrl.envs import env_for_instance
from swesrl.envs.base import SandboxConfig
from swesrl.harness import grade_patch

log = logging.getLogger(__name__)


class RolloutConfig(StrictModel):
    max_concurrent_episodes: int = Field(64, ge=1)
    """Episodes of one process running at once (threads); their next turns are generated together."""
    max_concurrent_sandboxes: int = Field(8, ge=1)
    """Sandbox starts (and gradings) at once per process, so a step does not start hundreds of
    containers in the same second."""
    episode_timeout: float = Field(1800.0, gt=0)
    """Wall-clock seconds per episode (checked before every turn); past it the episode ends, reward 0."""
    max_batch: int = Field(64, ge=1)
    """Most turns in one generate call (transformers / vLLM colocate)."""
    draft_tokens: int = Field(0, ge=0)
    """Transformers backend: tokens drafted per reply per decode step by prompt lookup (what followed
    the reply's latest tokens earlier in its context) and verified in that step's forward; accepted
    ones cost no step of their own, and the sampling stays exact (speculative sampling). 0 (default):
    off; ignored with top_p < 1. On 2 CPU cores it does not pay: 4 drafts were accepted 37% of the
    time (2.1 tokens per row per forward) but a forward of 5 tokens cost 2.4x one of 1. It is for
    launch-bound GPU decoding (not measured yet). vLLM has its own (`speculative_config`)."""
    batch_wait: float = Field(0.05, ge=0)
    """Seconds the engine waits for more episodes to ask before generating a partial batch (vLLM
    colocate; the transformers backend starts at once, as later turns join its running batch)."""


class RewardConfig(StrictModel):
    kind: Literal["resolved", "f2p_fraction"] = "resolved"
    """`resolved`: 1 if the harness resolves the submission, else 0 (paper). `f2p_fraction`: the
    fraction of FAIL_TO_PASS tests that pass, 0 if any PASS_TO_PASS test fails."""
    grade_timeout: float = 300.0
    """Seconds for one grading run (fresh sandbox, patch + test patch, tests)."""


@dataclass
class Turn:
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]


@dataclass
class Episode:
    instance_id: str
    turns: list[Turn] = field(default_factory=list)
    reward: float = 0.0
    status: str = "pending"
    """The agent's exit status, or why the episode scored 0 without grading (sandbox_error, ...)."""
    error: str | None = None
    elapsed: float = 0.0
    messages: list[dict] = field(default_factory=list)
    """The agent's trajectory messages (what the loop saw as text)."""

    @property
    def generated_tokens(self) -> int:
        return sum(len(t.completion_ids) for t in self.turns)


# ---- the engine: the next turns of all waiting episodes, generated together ---------------------


class TurnEngine:
    """Episode threads call `generate(prompt_ids)` and block; `serve()` (in the caller's thread) runs
    the backend on every request waiting, as one batch, until all episodes have left."""

    def __init__(self, backend, max_batch: int = 64, batch_wait: float = 0.05):
        self.backend, self.max_batch, self.batch_wait = backend, max_batch, batch_wait
        self.requests: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.active = 0
        self.calls = 0
        self.generated_tokens = 0
        self.batches: list[tuple[int, int, float]] = []  # (turns, longest reply, seconds) per call

    def join(self) -> None:
        with self.lock:
            self.active += 1

    def leave(self) -> None:
        with self.lock:
            self.active -= 1
        self.requests.put(None)  # wake serve() so it re-checks who is still running

    def generate(self, prompt_ids: list[int]) -> tuple[list[int], list[float]]:
        if not self.backend.batched:
            out = self.backend.generate([prompt_ids])[0]
            with self.lock:
                self.calls += 1
                self.generated_tokens += len(out[0])
            return out
        box: dict[str, Any] = {"prompt": prompt_ids, "done": threading.Event()}
        self.requests.put(box)
        box["done"].wait()
        if "error" in box:
            raise box["error"]
        return box["out"]

    def serve(self, running: Callable[[], bool]) -> None:
        """Generate for waiting episodes while `running()`; returns when it is false and nobody waits."""
        pending: list[dict] = []
        # a backend that admits newcomers into its running batch needs no wait for them
        wait = 0.0 if getattr(self.backend, "early", False) else self.batch_wait
        while running() or pending or not self.requests.empty():
            try:
                if not pending:
                    item = self.requests.get(timeout=0.1)
                else:
                    item = self.requests.get(timeout=wait) if wait else self.requests.get_nowait()
                if item is not None:
                    pending.append(item)
                with self.lock:
                    active = self.active
                if len(pending) < min(active, self.max_batch) and item is not None:
                    continue  # more episodes may ask in a moment: batch them together
            except queue.Empty:
                pass
            if not pending:
                continue
            batch, pending = pending[: self.max_batch], pending[self.max_batch :]

            def deliver(j: int, out: tuple[list[int], list[float]], batch=batch) -> None:
                box = batch[j]
                if not box["done"].is_set():
                    box["out"] = out
                    self.generated_tokens += len(out[0])
                    box["done"].set()  # this episode goes on while the rest of the batch generates

            def admit(running: int, batch=batch) -> list[list[int]]:
                """Requests that arrived while the batch runs, up to max_batch rows in all."""
                new = []
                while running + len(new) < self.max_batch:
                    try:
                        item = self.requests.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        new.append(item)
                batch += new
                return [b["prompt"] for b in new]

            try:
                t0 = time.perf_counter()
                prompts = [b["prompt"] for b in batch]
                if getattr(self.backend, "early", False):
                    outs = self.backend.generate(prompts, on_done=deliver, admit=admit)
                else:
                    outs = self.backend.generate(prompts)
                self.batches.append((len(batch), max(len(o[0]) for o in outs), time.perf_counter() - t0))
                self.calls += 1
                for j, o in enumerate(outs):
                    deliver(j, o)
            except Exception as e:  # the episodes still waiting fail (reward 0); the step goes on
                for b in batch:
                    if not b["done"].is_set():
                        b["error"] = e
                        b["done"].set()


# ---- the policy as the agent loop's model, one per episode --------------------------------------


class EpisodeTimeout(Exception):
    pass


def chat_ids(tokenizer, messages: list[dict]) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def delta_ids(tokenizer, new_messages: list[dict], ended_with_eos: bool) -> list[int]:
    """Template tokens after a sampled reply: the end of the assistant turn (unless the reply's own
    end-of-sequence token already closed it), the new messages, the next generation prompt.
    Rendered on a fixed dummy conversation, so the history is never rendered or tokenised again."""
    mark = "\x00REPLY\x00"
    head = [{"role": "user", "content": "x"}, {"role": "assistant", "content": mark}]
    before = tokenizer.apply_chat_template(head, tokenize=False)
    after = tokenizer.apply_chat_template(head + new_messages, tokenize=False, add_generation_prompt=True)
    if not after.startswith(before):
        raise ValueError("the chat template renders a conversation differently once it grows")
    text = before[before.index(mark) + len(mark) :] + after[len(before) :]
    eos = tokenizer.eos_token
    if ended_with_eos and eos and text.startswith(eos):
        text = text[len(eos) :]
    return tokenizer(text, add_special_tokens=False)["input_ids"]


class EpisodePolicy:
    """The agent's model for one episode: messages in, text out, every turn recorded as token ids."""

    name = "policy"

    def __init__(self, engine: TurnEngine, tokenizer, context: str, deadline: float):
        self.engine, self.tokenizer, self.context, self.deadline = engine, tokenizer, context, deadline
        self.turns: list[Turn] = []
        self.seen: list[dict] = []  # the full-context prompt of the last turn, then its reply
        self._cache: tuple[int, list[int]] | None = None

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        if self.context != "full" or not self.turns:
            return chat_ids(self.tokenizer, messages)
        n = len(self.seen)
        if messages[:n] != self.seen:
            raise ValueError("full context: the history changed between turns (cannot extend the tokens)")
        last = self.turns[-1]
        ended = bool(last.completion_ids) and last.completion_ids[-1] == self.tokenizer.eos_token_id
        return last.prompt_ids + last.completion_ids + delta_ids(self.tokenizer, messages[n:], ended)

    def count_tokens(self, messages: list[dict]) -> int:
        ids = self.prompt_ids(messages)
        self._cache = (id(messages), ids)
        return len(ids)

    def generate(self, messages: list[dict], n: int = 1, **sampling: Any) -> list[str]:
        if time.monotonic() > self.deadline:
            raise EpisodeTimeout("episode wall-clock limit")
        cached = self._cache
        ids = cached[1] if cached and cached[0] == id(messages) else self.prompt_ids(messages)
        self._cache = None
        completion, logprobs = self.engine.generate(ids)
        self.turns.append(Turn(ids, completion, logprobs))
        text = cut_at_stop(self.tokenizer.decode(completion, skip_special_tokens=True))
        self.seen = [*messages, {"role": "assistant", "content": text}]
        return [text]


# ---- episodes -----------------------------------------------------------------------------------


class StartingEnv:
    """An episode's sandbox while it starts (at most `max_concurrent_sandboxes` start at once): the
    agent's first turn, whose prompt needs only the task, is generated meanwhile, and the agent's
    first command waits for the start. A start that fails raises there (the agent ends with an
    error) and is kept in `error`. Leaving the `with` block closes the sandbox (once started), whether
    or not the agent used it: through `close_in` (an executor the rollout drains before it returns)
    when given, so grading need not wait for the teardown."""

    def __init__(self, future, close_in=None):
        self._future, self._close_in = future, close_in
        self.error: str | None = None

    def _env(self):
        try:
            return self._future.result()
        except Exception as e:
            self.error = f"{type(e).__name__}: {e}"
            raise

    def __getattr__(self, name: str):
        return getattr(self._env(), name)

    def __enter__(self) -> StartingEnv:
        return self

    def __exit__(self, *exc) -> None:
        try:
            env = self._env()
        except Exception:
            return  # it never started: nothing to close
        if self._close_in is None:
            env.close()
        else:
            self._close_in.submit(close_logged, env)


def close_logged(env) -> None:
    try:
        env.close()
    except Exception as e:  # the episode's result stands; the sandbox backends' own cleanup remains
        log.warning("closing a sandbox failed: %s: %s", type(e).__name__, e)


def grade_reward(report: dict, kind: str) -> float:
    """The reward of one graded submission (see `RewardConfig.kind`).

    >>> grade_reward({"resolved": True}, "resolved")
    1.0
    >>> ok = {"FAIL_TO_PASS": {"success": ["a"], "failure": ["b"]}, "PASS_TO_PASS": {"success": [], "failure": []}}
    >>> grade_reward({"resolved": False, "tests_status": ok}, "f2p_fraction")
    0.5
    """
    if kind == "resolved" or report.get("resolved"):
        return float(bool(report.get("resolved")))
    status = report.get("tests_status") or {}
    f2p, p2p = status.get("FAIL_TO_PASS") or {}, status.get("PASS_TO_PASS") or {}
    if p2p.get("failure"):
        return 0.0
    total = len(f2p.get("success", [])) + len(f2p.get("failure", []))
    return len(f2p.get("success", [])) / total if total else 0.0


@dataclass
class RolloutSetup:
    """What every episode of a run shares."""

    agent: AgentConfig
    sandbox: SandboxConfig
    mirror: Path | None
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)


def run_episodes(
    instances: list[dict],
    setup: RolloutSetup,
    backend,
    tokenizer,
    on_episode: Callable[[Episode], None] | None = None,
) -> tuple[list[Episode], dict[str, float]]:
    """One episode per entry of `instances` (an instance listed G times gets G episodes), all at once
    (up to `max_concurrent_episodes`); returns them in order and rollout statistics."""
    r = setup.rollout
    agent = setup.agent
    if not agent.time_limit or agent.time_limit > r.episode_timeout:
        agent = agent.model_copy(update={"time_limit": r.episode_timeout})
    engine = TurnEngine(backend, r.max_batch, r.batch_wait)
    starts = ThreadPoolExecutor(max_workers=r.max_concurrent_sandboxes, thread_name_prefix="sandbox-start")
    grades = threading.Semaphore(r.max_concurrent_sandboxes)
    episodes = [Episode(i["instance_id"]) for i in instances]
    t0 = time.perf_counter()

    def one(k: int) -> None:
        inst, ep = instances[k], episodes[k]
        start = time.monotonic()
        policy = EpisodePolicy(engine, tokenizer, agent.context.kind, start + r.episode_timeout)
        in_engine = True
        env = StartingEnv(starts.submit(env_for_instance, inst, setup.sandbox, setup.mirror), starts)
        try:
            with env:
                traj = run_agent(inst, policy, env, agent)
            info = traj["info"]
            ep.status, ep.messages = info["exit_status"], traj["messages"]
            if env.error is not None:  # nothing of this episode is trained on: it never had a sandbox
                ep.status, ep.error = "sandbox_error", env.error
                policy.turns = []
            elif ep.status in ("error", "time_limit"):
                ep.error = info.get("exception") or "episode wall-clock limit"
            else:
                engine.leave()  # grading needs no model: the engine must not wait for it
                in_engine = False
                with grades:
                    report = grade_patch(
                        inst,
                        info.get("submission") or "",
                        setup.sandbox,
                        setup.mirror,
                        timeout=setup.reward.grade_timeout,
                    )
                ep.reward = grade_reward(report, setup.reward.kind)
        except Exception as e:  # grading or sandbox teardown failed: reward 0, the step goes on
            ep.status, ep.error, ep.reward = "error", f"{type(e).__name__}: {e}", 0.0
        finally:
            ep.turns = policy.turns
            ep.elapsed = time.monotonic() - start
            if in_engine:
                engine.leave()
            if ep.error:
                log.warning("%s: episode %s, reward 0: %s", ep.instance_id, ep.status, ep.error)
            if on_episode:
                on_episode(ep)

    running = [len(instances)]
    lock = threading.Lock()

    def wrapped(k: int) -> None:
        try:
            one(k)
        finally:
            with lock:
                running[0] -= 1

    for _ in instances:
        engine.join()
    with (
        starts,
        ThreadPoolExecutor(max_workers=min(r.max_concurrent_episodes, max(len(instances), 1))) as pool,
    ):
        futures = [pool.submit(wrapped, k) for k in range(len(instances))]
        engine.serve(lambda: running[0] > 0)
        for f in futures:
            f.result()
    wall = time.perf_counter() - t0
    stats = {
        "episodes": len(episodes),
        "failed_episodes": sum(e.error is not None for e in episodes),
        "generated_tokens": engine.generated_tokens,
        "generate_calls": engine.calls,
        "turns": sum(len(e.turns) for e in episodes),
        "generate_seconds": sum(b[2] for b in engine.batches),
        "mean_batch": sum(b[0] for b in engine.batches) / max(len(engine.batches), 1),
        "rollout_seconds": wall,
        # prompt tokens run through the model / taken from the prefix cache (transformers backend)
        "prefill_tokens": getattr(backend, "prefill_tokens", 0),
        "reused_prompt_tokens": getattr(backend, "reused_tokens", 0),
        # its decode loop: steps, rows summed over the steps, wall seconds (transformers backend)
        "decode_steps": getattr(backend, "decode_steps", 0),
        "decode_rows": getattr(backend, "decode_rows", 0),
        "decode_seconds": getattr(backend, "decode_seconds", 0.0),
        # drafted tokens fed to the decode loop / accepted by its sampling (transformers backend)
        "drafted_tokens": getattr(backend, "drafted", 0),
        "accepted_drafts": getattr(backend, "accepted", 0),
    }
    return episodes, stats


# ---- episodes -> training samples ---------------------------------------------------------------


@dataclass
class Sample:
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    env_mask: list[int]


def full_sample(ep: Episode, pad_id: int) -> Sample:
    """The whole episode as one sequence: prompt = the first turn's prompt; completion = every sampled
    id (env_mask 1, its sampling log-prob) and every observation/template id (env_mask 0) in order."""
    if not ep.turns:
        return Sample([pad_id], [pad_id], [0.0], [0])  # nothing generated: a row that trains nothing
    first = ep.turns[0]
    ids, lps, mask = [], [], []
    seq = list(first.prompt_ids)
    for t in ep.turns:
        if t.prompt_ids[: len(seq)] != seq:
            raise ValueError(f"{ep.instance_id}: a turn's prompt does not extend the episode's tokens")
        env = t.prompt_ids[len(seq) :]
        ids += env + t.completion_ids
        lps += [0.0] * len(env) + t.logprobs
        mask += [0] * len(env) + [1] * len(t.completion_ids)
        seq = t.prompt_ids + t.completion_ids
    return Sample(list(first.prompt_ids), ids, lps, mask)


def turn_samples(ep: Episode) -> list[Sample]:
    """One sample per turn (the `srl` context): the prompt the turn was generated from, its sampled ids."""
    return [Sample(t.prompt_ids, t.completion_ids, t.logprobs, [1] * len(t.completion_ids)) for t in ep.turns]
