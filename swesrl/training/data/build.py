"""`swesrl data build`: stream trajectories into `srl.jsonl`, `sft.jsonl` and `stats.json`.

With `with_state` (`--with-state`), each trajectory is also replayed in a sandbox
(`verify.replay_states`) and every SRL row carries `state: {patch, final_patch}`: the workspace
diff against base_commit before its step and the expert's final patch, what the execution reward
(`training/exec_reward.py`) restores and compares with.

Memory stays bounded: one trajectory at a time, rows written as they are made; what is kept
across the run is counters, one small integer per trajectory and per row (for percentiles),
and 16-byte hashes for de-duplication.
"""

from __future__ import annotations

import hashlib
import json
import logging
from array import array
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from swesrl.agent.context import ContextPolicy
from swesrl.agent.loop import load_agent_config
from swesrl.core.trajectories import Dropped, expand_paths, iter_records, load_and_normalise
from swesrl.training.data.steps import TokenBudget, agent_messages, build_step_instances, sft_conversation
from swesrl.training.data.verify import replay_states
from swesrl.utils import OnProgress, atomic_write_json

log = logging.getLogger(__name__)
MAX_DROPPED_ITEMS = 200
"""Dropped items listed one by one in stats.json (all are counted)."""


@dataclass
class BuildOptions:
    policy: ContextPolicy = field(default_factory=ContextPolicy)
    tokenizer: Any = None
    max_prompt_tokens: int | None = None
    max_observation_tokens: int | None = None
    only_resolved: bool = False
    skip_submit: bool = False
    max_steps: int | None = None
    dedupe: bool = True
    system_prompt: str | None = None
    instances: dict[str, dict] | None = None
    """instance_id -> instance: the task template then renders the real instance."""
    with_state: bool = False
    """Replay each trajectory in a sandbox and store the state before every step (needs `instances`)."""
    mirror: str | Path | None = None
    """Folder of `<owner>__<name>.git` repositories for the replay (`with_state`)."""


def percentiles(values: Iterable[int]) -> dict[str, float]:
    import numpy as np

    a = np.fromiter(values, dtype=np.int64)
    if a.size == 0:
        return {"count": 0}
    q = np.percentile(a, [0, 10, 25, 50, 75, 90, 99, 100])
    return {
        "count": int(a.size),
        "mean": round(float(a.mean()), 2),
        **{
            k: float(v)
            for k, v in zip(("min", "p10", "p25", "p50", "p75", "p90", "p99", "max"), q, strict=True)
        },
    }


class DropLog:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.items: list[dict] = []

    def add(self, d: Dropped) -> None:
        self.counts[d.reason] += 1
        if len(self.items) < MAX_DROPPED_ITEMS:
            self.items.append(asdict(d))

    def as_dict(self) -> dict:
        return {"counts": dict(self.counts), "items": self.items}


def _digest(obj: Any) -> bytes:
    return hashlib.blake2b(json.dumps(obj, ensure_ascii=False).encode(), digest_size=16).digest()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _messages_json(messages: list[dict], cache: dict[tuple[str, str], str]) -> str:
    """JSON of a message list; each distinct message is encoded once per trajectory (system and task
    messages and kept steps repeat across a trajectory's rows)."""
    parts = []
    for m in messages:
        key = (m["role"], m["content"])
        js = cache.get(key)
        if js is None:
            js = cache[key] = _dumps({"role": m["role"], "content": m["content"]})
        parts.append(js)
    return "[" + ", ".join(parts) + "]"


@dataclass
class _Result:
    """What one record turns into (computed in a worker process when `workers` > 1)."""

    dropped: list[Dropped] = field(default_factory=list)
    traj: dict | None = None
    """source_format, resolved, instance_id, where, n_steps: for the stats."""
    key: bytes | None = None
    """De-duplication key of the trajectory (instance + actions)."""
    rows: list[tuple[bytes, int, str, int]] = field(default_factory=list)
    """(row key, prompt length, JSON line, step) per SRL row."""
    sft: str | None = None
    used: bool = False


_CTX: dict[str, Any] = {}


def _init_worker(opts: BuildOptions, config: Any) -> None:
    _CTX.update(
        opts=opts, config=config, budget=TokenBudget(opts.tokenizer) if opts.tokenizer is not None else None
    )


def _process(record: Any, source: str) -> _Result:
    """Decode, normalise, cut into SRL rows and an SFT conversation, serialise: one record's work."""
    opts: BuildOptions = _CTX["opts"]
    config, budget = _CTX["config"], _CTX["budget"]
    res = _Result()
    traj = load_and_normalise(record, source)
    if isinstance(traj, Dropped):
        res.dropped.append(traj)
        return res
    where = f"{traj['source']} ({traj['instance_id']})"
    res.traj = {
        "format": traj["source_format"],
        "resolved": traj["resolved"],
        "where": where,
        "n_steps": len(traj["steps"]),
    }
    if opts.only_resolved and traj["resolved"] is not True:
        why = "not_resolved" if traj["resolved"] is False else "resolution_unknown"
        res.dropped.append(Dropped(where, why, "--only-resolved"))
        return res
    if opts.dedupe:
        res.key = _digest([traj["instance_id"], [s.action for s in traj["steps"]]])
    instance = (opts.instances or {}).get(traj["instance_id"])
    replay = None
    if opts.with_state:
        if instance is None:
            res.dropped.append(Dropped(where, "no_instance", "--with-state needs the instance (--instances)"))
            return res
        try:
            replay = replay_states(traj, instance, config, opts.mirror)
        except Exception as e:  # one broken replay must not stop the build
            res.dropped.append(Dropped(where, "state_replay_failed", f"{type(e).__name__}: {e}"[:300]))
            return res
        res.traj["state_matches"] = replay["matches"]
    messages = agent_messages(traj, config, instance, opts.system_prompt, budget, opts.max_observation_tokens)
    rows, res.dropped = build_step_instances(
        traj,
        opts.policy,
        opts.system_prompt,
        opts.tokenizer,
        opts.max_prompt_tokens,
        config=config,
        instance=instance,
        max_observation_tokens=opts.max_observation_tokens,
        skip_submit=opts.skip_submit,
        max_steps=opts.max_steps,
        messages=messages,
    )
    res.used = True
    cache: dict[tuple[str, str], str] = {}
    for row in rows:
        prompt_json = _messages_json(row["prompt"], cache)
        action_json = _dumps(row["expert_action"])
        state_json = ""
        if replay is not None:
            state = {"patch": replay["patches"][row["step"]], "final_patch": replay["final_patch"]}
            state_json = f', "state": {_dumps(state)}'
        key = (
            hashlib.blake2b((prompt_json + action_json + state_json).encode(), digest_size=16).digest()
            if opts.dedupe
            else b""
        )
        if budget is not None:
            length = budget.count_messages(row["prompt"])
        else:
            length = sum(len(m["content"]) for m in row["prompt"])
        line = (
            f'{{"instance_id": {_dumps(row["instance_id"])}, "step": {row["step"]}, "n_steps": {row["n_steps"]}, '
            f'"prompt": {prompt_json}, "expert_action": {action_json}, '
            f'"expert_thought": {_dumps(row["expert_thought"])}{state_json}}}\n'
        )
        res.rows.append((key, length, line, row["step"]))
    conv = sft_conversation(messages, traj)
    if len(conv["messages"]) > 2:
        res.sft = _dumps(conv) + "\n"
    return res


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _process_batch(batch: list) -> list[_Result]:
    return [_Result(dropped=[item]) if isinstance(item, Dropped) else _process(*item) for item in batch]


def _results(records: Iterable, opts: BuildOptions, config: Any, workers: int) -> Iterator[_Result]:
    """Results in input order; with workers > 1 a process pool with a bounded number of batches in flight."""
    if workers <= 1:
        _init_worker(opts, config)
        for batch in _batches(records, 1):
            yield from _process_batch(batch)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(opts, config)
    ) as pool:
        pending: deque = deque()
        for batch in _batches(records, 16):
            pending.append(pool.submit(_process_batch, batch))
            if len(pending) >= 3 * workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def build_dataset(
    paths: list[str | Path],
    out_dir: str | Path,
    opts: BuildOptions | None = None,
    config: Any = None,
    on_progress: OnProgress | None = None,
    workers: int = 1,
) -> dict:
    """Read every trajectory, write the SRL rows, SFT conversations and stats; return the stats.

    `workers` > 1 cuts trajectories in that many processes; the output is the same, in the same order.
    `on_progress("building", trajectories read, None, "<n> instances")` every 50 trajectories and at the end."""
    opts = opts or BuildOptions()
    if config is None:
        config = load_agent_config()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    drops = DropLog()
    formats: Counter[str] = Counter()
    steps_per_traj, prompt_lengths = array("l"), array("l")
    seen_traj: set[bytes] = set()
    seen_rows: set[bytes] = set()
    n_read = n_used = n_rows = n_sft = 0
    resolved: Counter[str] = Counter()
    replayed: Counter[str] = Counter()
    files = expand_paths(paths)
    with (
        open(out / "srl.jsonl", "w", encoding="utf-8") as srl,
        open(out / "sft.jsonl", "w", encoding="utf-8") as sft,
    ):
        for res in _results(iter_records(files), opts, config, workers):
            for d in res.dropped:
                drops.add(d)
            if res.traj is None:
                continue
            n_read += 1
            formats[res.traj["format"]] += 1
            resolved[str(res.traj["resolved"]).lower()] += 1
            if "state_matches" in res.traj:
                m = res.traj["state_matches"]
                replayed["unknown" if m is None else "matches" if m else "differs"] += 1
            if on_progress and n_read % 50 == 1:
                on_progress("building", n_read, None, f"{n_rows} instances")
            if not res.used:
                continue
            if res.key is not None:
                if res.key in seen_traj:
                    why = "same instance and actions as an earlier one"
                    drops.add(Dropped(res.traj["where"], "duplicate_trajectory", why))
                    continue
                seen_traj.add(res.key)
            n_used += 1
            steps_per_traj.append(res.traj["n_steps"])
            for key, length, line, step in res.rows:
                if opts.dedupe:
                    if key in seen_rows:
                        where = f"{res.traj['where']} step {step}"
                        drops.add(Dropped(where, "duplicate_step", "same prompt and action"))
                        continue
                    seen_rows.add(key)
                prompt_lengths.append(length)
                srl.write(line)
                n_rows += 1
            if res.sft is not None:
                sft.write(res.sft)
                n_sft += 1
    if on_progress:
        on_progress("building", n_read, n_read, f"{n_rows} instances")
    stats = {
        "inputs": [str(p) for p in files],
        "trajectories_read": n_read,
        "trajectories_used": n_used,
        "instances": n_rows,
        "sft_conversations": n_sft,
        "formats": dict(formats),
        "resolved": dict(resolved),
        "steps_per_trajectory": percentiles(steps_per_traj),
        "prompt_length": {
            "unit": "tokens" if opts.tokenizer is not None else "characters",
            **percentiles(prompt_lengths),
        },
        "dropped": drops.as_dict(),
        **({"state_replay": dict(replayed)} if opts.with_state else {}),
        "options": {
            "workers": workers,
            "context": opts.policy.model_dump(),
            "tokenizer": getattr(opts.tokenizer, "name_or_path", None),
            "max_prompt_tokens": opts.max_prompt_tokens,
            "max_observation_tokens": opts.max_observation_tokens,
            "only_resolved": opts.only_resolved,
            "skip_submit": opts.skip_submit,
            "max_steps": opts.max_steps,
            "dedupe": opts.dedupe,
            "with_state": opts.with_state,
        },
    }
    atomic_write_json(out / "stats.json", stats)
    return stats
