"""Execution-aware step reward: score what an action does, not only how it is spelled.

The paper's reward (`rewards.srl_reward`) is the string similarity of the policy's action to the
expert's. `grep -rn foo .` and `grep -n foo -r .`, or an edit written with another anchor, are
then "different" although they do the same thing. This reward runs both actions on the sandbox
state the expert had before the step and compares their effects (`reward.compare: execution`;
`mixed` is `text_weight * text + (1 - text_weight) * execution`).

The state. `swesrl data build --with-state` replays each expert trajectory in a sandbox
(`data/verify.py: replay_states`) and stores, in every step row, `state.patch` (the workspace diff
against base_commit after the expert's earlier steps) and `state.final_patch` (the expert's
submission). The rows reach the reward as TRL's `state` column (`srl.load_srl_dataset`), so the
training data is the one source of states. Restoring a state is: the repository at base_commit
(`git checkout -f`, `git clean -ffdx`), then `git apply` of the patch. Not restored: files outside /testbed (/tmp, $HOME), binary
changes (a text diff cannot carry them) and the editor's undo history.

The score (`effect_similarity`; `sim(a, b)` is `rewards.similarity`, 1.0 when equal):
- same canonical call as the expert (parameters parsed, order and whitespace ignored): 1.0 without
  running anything (same call, same state, same effect);
- `submit`: `sim(state.patch, state.final_patch)`, the patch the policy would submit now against
  the expert's final patch; a non-submit action where the expert submits: 0.0 (no submission);
- the expert's step changed the repository (its `delta`, the diff of the work tree against the
  restored state, is not empty): `sim(policy delta, expert delta)`: an edit is judged by the change
  it makes, whatever the tool, anchor or whitespace of the call (the editor's and sed's outputs
  differ; the change does not);
- otherwise (a read, a test run): the observation, `sim(output, output)` with timings such as
  `0.03s` masked, halved when the exit codes differ, halved again when the policy's command
  changed the repository where the expert's did not;
- failed effects score 0.0: a timeout, a change to `.git` metadata (config, hooks, refs: the
  sandbox's git can no longer be trusted and is rebuilt), a change to the sandbox's own files.
  When the expert's own effect cannot be measured (no state for the row, its action timed out or
  changed `.git`, or a sandbox failed) the row falls back to the text reward, counted in
  `exec/fallback_rate`. Format failures stay -1.

Safety and cost. Every action runs through the sandbox's command runner (`envs/runner_script.py`)
in a sandbox of the configured backend (local bubblewrap by default, docker through the same
runner): no network (enforced), a timeout per action, bounded output, every process killed after
each command. Whether an action changed anything is read by the runner itself once the action's
processes are dead: a fingerprint (name, mode, size, ctime and inode of every entry of the
workspace, /tmp, $HOME, /dev and the sandbox's state folder, recently changed files hashed by content)
comes back with the action's reply, no extra command. A `.git` (config, hooks, refs) or sandbox
folder that changed fails the effect and replaces the sandbox, so git never runs on a `.git` the
policy touched; git always runs with hooks, fsmonitor, textconv and external diff off and no global
config. A read that cannot write (`is_pure_read`, editor views) needs no fingerprint; an editor edit
is measured and undone by the runner (the touched file's bytes before and after, one `git diff
--no-index` of them, the old bytes written back: 1 round trip, 1 process); any other change is
diffed with `git add -A; git diff --cached` against the state's tree and the state restored with
`git checkout`/`clean`/`apply`, in one command. The runner's edit diff and git's agree byte for
byte (index lines dropped from both, `normalise_delta`); where they might not (a .gitattributes,
line-ending settings, ignore rules for a new file, edits of ignore files, binary or odd paths) the
edit goes the general way. The state's tree is built once per state and sandbox, at its first
change measured by git. A pool of warm sandboxes, one or more per task, is shared across GRPO steps; identical calls on
the same state run once (a cache shared across steps), completions run in parallel over sandboxes,
and sandboxes are closed on errors, at exit and on SIGTERM.

>>> expert = Effect(output="a.py:3:foo\\n", returncode=0)
>>> effect_similarity(Effect(output="a.py:3:foo\\n", returncode=0), expert)
1.0
>>> effect_similarity(Effect(output="", returncode=0, delta="diff --git a/a.py b/a.py\\n..."), expert)
0.0
>>> effect_similarity(Effect(failed="timeout"), expert)
0.0
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import logging
import re
import shlex
import threading
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, field_validator

from swesrl.config import StrictModel
from swesrl.core.actions import Action, FormatError, parse_action
from swesrl.core.instances import default_mirror, load_instances
from swesrl.envs import SandboxConfig, env_for_instance
from swesrl.envs.base import WORKDIR
from swesrl.envs.common import STATE_DIR, close_on_sigterm, reply_text
from swesrl.envs.local import close_all_local
from swesrl.envs.tools import execute_action
from swesrl.training.rewards import FORMAT_FAILURE, completion_text, similarity, srl_reward
from swesrl.utils import UserError

log = logging.getLogger(__name__)

EDIT_COMMANDS = ("create", "str_replace", "insert", "undo_edit")
_TIMING = re.compile(r"\b\d+(?:\.\d+)?\s?(?:s|ms|sec|seconds)\b")


class ExecutionConfig(StrictModel):
    instances: str | None = None
    """Instances file of those rows (SWE-bench schema); bundled suites: SUITE/instances.jsonl."""
    mirror: str | None = None
    """Folder of `<owner>__<name>.git` repositories; default: `repos/` beside `instances`."""
    timeout: float = Field(10.0, gt=0)
    """Seconds one action may run; past it the effect counts as failed (reward 0)."""
    workers: int = Field(2, ge=1)
    """Sandboxes working at the same time (threads); about the number of free CPU cores."""
    max_sandboxes: int = Field(8, ge=1)
    """Warm sandboxes kept open across steps (idle ones of other tasks are closed past it)."""
    cache_size: int = Field(20_000, ge=0)
    """Effects of (state, call) pairs remembered across steps; the same call on the same state runs once."""
    sandbox: SandboxConfig = SandboxConfig(timeout=10.0)
    """Backend and limits of the sandboxes (`backend: local|docker`, memory, pids, ...); network stays off."""

    @field_validator("sandbox")
    @classmethod
    def _no_network(cls, v: SandboxConfig) -> SandboxConfig:
        if v.network:
            raise ValueError("the execution reward runs policy actions: sandbox.network must stay false")
        return v


@dataclass(frozen=True)
class Effect:
    """What one action did on a state."""

    output: str = ""
    returncode: int = 0
    delta: str | None = ""
    """The diff of the repository against the restored state ("" when nothing changed); None when unknown."""
    failed: str | None = None
    """Why the effect counts as failed (timeout, .git changed, sandbox files changed), else None."""


READ_ONLY = frozenset(
    {"cat", "head", "tail", "ls", "wc", "nl", "grep", "egrep", "fgrep", "pwd", "stat", "cut", "tr"}
)
"""Programs that cannot write a file whatever their arguments (`tail` only without `-f`). Not
here on purpose: sort (-o), uniq (an output file argument), file (-C), sed (w), awk, find, git."""
_SHELL_META = set("$`><;&(){}\\\n!*?[]~#=")


def is_pure_read(command: str) -> bool:
    """True when `command` cannot change any file: a pipeline of READ_ONLY programs with plain
    arguments (no redirection, substitution, globbing, variables or other shell syntax). Such a
    command leaves the sandbox at its state, so no check runs after it.

    >>> is_pure_read("grep -rn foo . | head -n 5"), is_pure_read("grep foo . > out"), is_pure_read("rm -rf .")
    (True, False, False)
    """
    if not command.strip() or any(c in _SHELL_META for c in command):
        return False
    try:
        stages = [shlex.split(part) for part in command.split("|")]
    except ValueError:
        return False
    for argv in stages:
        if not argv:
            return False
        prog, args = argv[0], argv[1:]
        if prog not in READ_ONLY:
            return False
        if prog == "tail" and any(a.startswith("-") and ("f" in a or "F" in a) for a in args):
            return False
    return True


def normalise_output(text: str) -> str:
    """Mask durations (`in 0.03s`), which differ between two runs of the same command."""
    return _TIMING.sub("<t>", text)


def effect_similarity(policy: Effect, expert: Effect) -> float:
    """The score of the policy's effect against the expert's (module docstring); `expert` must not be failed."""
    if policy.failed or policy.delta is None:
        return 0.0
    if expert.delta:
        return similarity(policy.delta, expert.delta)
    score = similarity(normalise_output(policy.output), normalise_output(expert.output))
    if policy.returncode != expert.returncode:
        score *= 0.5
    if policy.delta:
        score *= 0.5
    return score


# ---------------------------------------------------------------------------------------------
# step states


@dataclass(frozen=True)
class StepState:
    instance_id: str
    patch: str
    final_patch: str

    @property
    def key(self) -> str:
        h = hashlib.blake2b(digest_size=12)
        for part in (self.instance_id, self.patch):
            h.update(part.encode("utf-8", "surrogatepass") + b"\0")
        return h.hexdigest()


def row_state(instance_id: str, state: Any) -> StepState | None:
    """The StepState of a row's `state` column ({patch, final_patch}); None when it has none."""
    if isinstance(state, StepState):
        return state
    if not isinstance(state, dict) or not isinstance(state.get("patch"), str):
        return None
    return StepState(str(instance_id), state["patch"], str(state.get("final_patch") or ""))


# ---------------------------------------------------------------------------------------------
# sandbox scripts (run inside the sandbox; every git call with hooks, fsmonitor and global config off)

_GIT_ENV = (
    "export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_NO_REPLACE_OBJECTS=1 GIT_TERMINAL_PROMPT=0"
)
_G = "git -c core.fsmonitor=false -c core.hooksPath=/dev/null -c gc.auto=0 -c core.untrackedCache=false"
_INDEX = f"{STATE_DIR}/exec.index"
_DELTA = f"{STATE_DIR}/exec.delta"


def restore_script(base_commit: str, patch: str, want_tree: bool) -> str:
    """The repository at base_commit plus `patch`, the editor's history gone; `TREE <id>` (the
    state's tree, for diffs against it) when `want_tree`. Its output is only errors and TREE."""
    b = shlex.quote(base_commit)
    lines = [
        f"cd {WORKDIR} || exit 90",
        _GIT_ENV,
        f"{_G} checkout -q -f -B main {b} && {_G} clean -qffdx || exit 91",
        f"rm -f {STATE_DIR}/history.json {STATE_DIR}/history.json.tmp",
    ]
    if patch:
        payload = base64.b64encode(patch.encode("utf-8", "surrogateescape")).decode("ascii")
        lines.append(
            f"base64 -d <<'SWESRL_B64' | {_G} apply --whitespace=nowarn - || exit 92\n{payload}\nSWESRL_B64"
        )
    if want_tree:
        lines.append(
            f"rm -f {_INDEX} && (cp .git/index {_INDEX} 2>/dev/null || true) && GIT_INDEX_FILE={_INDEX} {_G} add -A && "
            f"echo TREE $(GIT_INDEX_FILE={_INDEX} {_G} write-tree) && rm -f {_INDEX} || exit 93"
        )
    return "\n".join(lines)


_DIFF = (
    "-c core.quotePath=false -c diff.noprefix=false -c diff.mnemonicPrefix=false diff --no-color "
    "--no-ext-diff --no-textconv --src-prefix=a/ --dst-prefix=b/"
)


def delta_script(tree: str | None, base_commit: str, patch: str) -> str:
    """The change against the state (a git diff, untracked files included), then the state restored
    in the same command. With the state's tree `tree` known: `git diff --cached tree` of the work
    tree, then the restore; output: the diff. Without (the first change on this state in this
    sandbox, so a restore never pays for a tree it may not need): the work tree's tree, the restore,
    the state's tree from it, the diff of the two trees; output: `TREE <state's tree>` and the diff.
    Exit 0, else an error. Run only on a sandbox whose `.git` and own folders are still at their
    fingerprints (git must not run on a `.git` the policy changed)."""
    stage = (
        f"rm -f {_INDEX}; (cp .git/index {_INDEX} 2>/dev/null || true)\nGIT_INDEX_FILE={_INDEX} {_G} add -A"
    )
    restore = (
        f"(\n{restore_script(base_commit, patch, tree is None)}\n) > {_DELTA}.err 2>&1 || "
        f"{{ rc=$?; cat {_DELTA}.err; rm -f {_DELTA} {_DELTA}.err; exit $rc; }}\n"
    )
    head = f"cd {WORKDIR} || exit 90\n{_GIT_ENV}\n"
    if tree is not None:
        return (
            f"{head}{stage} && GIT_INDEX_FILE={_INDEX} {_G} {_DIFF} --cached {shlex.quote(tree)} > {_DELTA}; "
            f"rc=$?; rm -f {_INDEX}; [ $rc = 0 ] || exit 94\n{restore}cat {_DELTA}; rm -f {_DELTA} {_DELTA}.err"
        )
    return (
        f"{head}{stage} && now=$(GIT_INDEX_FILE={_INDEX} {_G} write-tree) || exit 94\nrm -f {_INDEX}\n{restore}"
        f"state=$(sed -n 's/^TREE //p' {_DELTA}.err); rm -f {_DELTA}.err; [ -n \"$state\" ] || exit 95\n"
        f'echo "TREE $state"; {_G} {_DIFF} "$state" "$now" || exit 96'
    )


_INDEX_LINE = re.compile(r"^index [0-9a-f]+\.\.[0-9a-f]+(?: [0-7]+)?\n", re.MULTILINE)


def normalise_delta(diff: str) -> str:
    """A diff without its `index <blob>..<blob>` lines: the runner's measured edits (runner_script's
    `watched_edit`) print none, and the blob ids add nothing the hunks do not say."""
    return _INDEX_LINE.sub("", diff)


def created_files(patch: str) -> list[str]:
    """Paths a state's patch creates (the runner leaves those to the general way: they may be ignored)."""
    return re.findall(r"^diff --git a/\S+ b/(\S+)\nnew file mode", patch, re.MULTILINE)


class SandboxBroken(Exception):
    """A pool sandbox cannot be trusted or used any more: it is closed and replaced."""


class WarmSandbox:
    """One sandbox of the pool, for one task, with the state it is at and its fingerprint (taken by
    the sandbox's command runner, `runner_script.fingerprint`)."""

    def __init__(self, instance: dict, env: Any, timeout: float):
        if not callable(getattr(env, "request", None)):
            raise SandboxBroken(f"{type(env).__name__} has no command runner requests (env.request)")
        self.instance, self.env, self.timeout = instance, env, timeout
        self.state_key: str | None = None
        self.clean = False
        self.fp: dict[str, Any] = {}
        self.trees: dict[str, str] = {}
        self.broken = False
        self.last_way = ""
        """How the last effect was read: read (no check), unchanged, runner (edit undone by the
        runner), git (diff and restore), failed."""

    def _fingerprinted(self, req: dict, timeout: float, since: float | None) -> tuple[Any, dict]:
        obs, reply = self.env.request({**req, "fingerprint": since}, timeout)
        fp = reply.get("fingerprint")
        if not isinstance(fp, dict) or not {"git", "work", "box", "all", "time"} <= fp.keys():
            self.broken = True  # the runner died (or is not ours): nothing about this sandbox is known
            raise SandboxBroken(f"no fingerprint from the sandbox's runner: {obs.output[-300:]}")
        return obs, reply

    def prepare(self, state: StepState) -> None:
        if self.clean and self.state_key == state.key:
            return
        script = restore_script(self.instance["base_commit"], state.patch, False)
        obs, reply = self._fingerprinted({"cmd": script}, 120, None)
        if obs.returncode != 0:
            self.broken = True
            raise SandboxBroken(f"restoring the state failed (exit {obs.returncode}): {obs.output[-300:]}")
        self.fp, self.state_key, self.clean = reply["fingerprint"], state.key, True

    def run(self, action: Action, state: StepState) -> Effect:
        """The effect of `action` on `state` (restored first if needed): a read that cannot write
        runs alone; anything else runs with a fingerprint taken after it (its processes dead); an
        editor edit is measured and undone by the runner (`watch`) where it can."""
        self.prepare(state)
        self.clean, self.last_way = False, "failed"
        params = dict(action.params)
        editor = action.name == "str_replace_editor"
        if (editor and params.get("command") == "view") or (
            action.name == "bash" and is_pure_read(params.get("command", ""))
        ):
            obs = execute_action(self.env, action, timeout=self.timeout)
            if obs.timed_out:
                return Effect(obs.output, obs.returncode, None, "timeout")
            self.clean, self.last_way = True, "read"  # cannot have written anything: still at the state
            return Effect(obs.output, obs.returncode, "")
        if editor and params.get("command") in EDIT_COMMANDS:
            req: dict = {"editor": params, "watch": {"new": created_files(state.patch)}}
        elif action.name == "bash":
            req = {"cmd": params.get("command", "")}
        else:
            raise ValueError(f"no effect for tool {action.name!r}")
        obs, reply = self._fingerprinted(req, self.timeout, self.fp["time"])
        fp = reply["fingerprint"]
        watched = reply.get("watched") or {}
        if "head" in watched:  # measured and undone by the runner: at the state again
            if fp["git"] != self.fp["git"] or fp["box"] != self.fp["box"]:
                self.broken = True
                raise SandboxBroken("the runner's undo left .git or the sandbox's folders changed")
            self.fp, self.clean, self.last_way = fp, True, "runner"
            return Effect(obs.output, obs.returncode, reply_text(watched))
        if fp["git"] != self.fp["git"] or fp["box"] != self.fp["box"]:
            self.broken = True  # .git, /tmp, $HOME, /dev or the state folder changed: replace the sandbox
            what = ".git metadata" if fp["git"] != self.fp["git"] else "files outside the repository"
            return Effect(obs.output, obs.returncode, None, f"{what} changed")
        if obs.timed_out:
            return Effect(obs.output, obs.returncode, None, "timeout")
        if fp["all"] == self.fp["all"]:
            self.clean, self.last_way = True, "unchanged"  # nothing changed: still at the state
            return Effect(obs.output, obs.returncode, "")
        script = delta_script(self.trees.get(state.key), self.instance["base_commit"], state.patch)
        d, reply = self._fingerprinted({"cmd": script}, 120, None)
        delta = d.output
        if state.key not in self.trees and d.returncode == 0:
            first, _, delta = delta.partition("\n")
            if first.startswith("TREE "):
                self.trees[state.key] = first[5:].strip()
        if d.returncode != 0 or state.key not in self.trees:
            self.broken = True
            raise SandboxBroken(f"reading the change failed (exit {d.returncode}): {d.output[-300:]}")
        self.fp, self.clean, self.last_way = reply["fingerprint"], True, "git"  # restored in the same command
        return Effect(obs.output, obs.returncode, normalise_delta(delta))

    def close(self) -> None:
        try:
            self.env.close()
        except Exception as e:  # closing must not hide the caller's error
            log.warning("closing a reward sandbox failed: %s", e)


class SandboxPool:
    """Warm sandboxes per task, at most `max_open` open in all; idle ones of other tasks are evicted."""

    def __init__(self, make: Callable[[dict], Any], max_open: int, timeout: float):
        self._make, self.max_open, self.timeout = make, max_open, timeout
        self._idle: OrderedDict[int, WarmSandbox] = OrderedDict()
        self._count = 0
        self._cond = threading.Condition()
        self._closed = False
        self.opened = 0
        """Sandboxes started so far (a measure of churn)."""

    def acquire(self, instance: dict) -> WarmSandbox:
        iid = instance["instance_id"]
        evict = None
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("sandbox pool is closed")
                mine = [k for k, sb in self._idle.items() if sb.instance["instance_id"] == iid]
                if mine:
                    return self._idle.pop(mine[-1])
                if self._count >= self.max_open and self._idle:
                    _, evict = self._idle.popitem(last=False)
                    self._count -= 1
                if self._count < self.max_open:
                    self._count += 1
                    self.opened += 1
                    break
                self._cond.wait(1.0)
        if evict is not None:
            evict.close()
        try:
            return WarmSandbox(instance, self._make(instance), self.timeout)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify_all()
            raise

    def release(self, sb: WarmSandbox) -> None:
        with self._cond:
            drop = sb.broken or self._closed
            if drop:
                self._count -= 1
            else:
                self._idle[id(sb)] = sb
            self._cond.notify_all()
        if drop:
            sb.close()

    @property
    def open(self) -> int:
        with self._cond:
            return self._count

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle = list(self._idle.values())
            self._idle.clear()
            self._count -= len(idle)
            self._cond.notify_all()
        for sb in idle:
            sb.close()


class LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get(self, key, default=None):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def put(self, key, value) -> None:
        if self.size <= 0:
            return
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


# ---------------------------------------------------------------------------------------------
# the scorer


def parse_call(text: str, require_think: bool = True) -> Action | None:
    if require_think and "</think>" not in text:
        return None
    try:
        return parse_action(text)[1]
    except FormatError:
        return None


def _expert_call(expert: str) -> Action | None:
    try:
        return parse_action(expert or "")[1]
    except FormatError:
        return None


@dataclass
class BatchStats:
    completions: int = 0
    format_failures: int = 0
    exact: int = 0
    submits: int = 0
    executed: int = 0
    """Actions run in sandboxes for this batch (expert actions included)."""
    cached: int = 0
    fallback: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        n = max(self.completions, 1)
        return {
            "exec/executed": float(self.executed),
            "exec/fallback_rate": self.fallback / n,
            "exec/failed_rate": self.failed / n,
            "exec/seconds": self.seconds,
        }


class ExecutionScorer:
    """Scores completions by the effect of their action on the step's state (module docstring)."""

    def __init__(self, cfg: ExecutionConfig, states: dict[str, StepState] | None = None,
                 instances: dict[str, dict] | None = None):  # fmt: skip
        """`states`: `instance_id#step` -> state, for callers without a `state` column (tests, benches)."""
        self.cfg = cfg
        states = states or {}
        if instances is None:
            if not cfg.instances:
                raise UserError(
                    "reward.compare=execution needs reward.execution.instances (the instances file)"
                )
            instances = {i["instance_id"]: dict(i) for i in load_instances(cfg.instances)}
        self.states, self.instances = states, instances
        mirror = cfg.mirror or (default_mirror(cfg.instances) if cfg.instances else None)
        box = cfg.sandbox.model_copy(update={"timeout": cfg.timeout, "network": False})
        self.pool = SandboxPool(
            lambda inst: env_for_instance(inst, box, mirror), cfg.max_sandboxes, cfg.timeout
        )
        self.expert_cache: LRU = LRU(max(cfg.cache_size, 1024))
        self.policy_cache: LRU = LRU(cfg.cache_size)
        self.last = BatchStats()
        self.ways: Counter[str] = Counter()
        """Effects read so far by way (`WarmSandbox.last_way`)."""
        self._lock = threading.Lock()
        self._threads = ThreadPoolExecutor(cfg.workers, thread_name_prefix="swesrl-exec")
        self._finalizer = weakref.finalize(self, _shutdown, self.pool, self._threads)
        atexit.register(self._finalizer)
        close_on_sigterm(close_all_local)  # from this (main) thread: the pool's threads open the sandboxes

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> ExecutionScorer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- running effects

    def _run_group(self, state: StepState, calls: list[tuple[Any, Action]]) -> dict[Any, Effect | Exception]:
        """Run calls on one state in one sandbox (replaced if a call breaks it)."""
        out: dict[Any, Effect | Exception] = {}
        instance = self.instances[state.instance_id]
        sb = None
        try:
            for key, action in calls:
                if sb is None:
                    sb = self.pool.acquire(instance)
                try:
                    out[key] = sb.run(action, state)
                except SandboxBroken as e:
                    out[key] = e
                with self._lock:
                    self.ways[sb.last_way] += 1
                if sb.broken:
                    self.pool.release(sb)
                    sb = None
        except Exception as e:  # a sandbox that cannot start: these calls fall back to text
            for key, _ in calls:
                out.setdefault(key, e)
        finally:
            if sb is not None:
                self.pool.release(sb)
        return out

    def _run(self, jobs: dict[tuple, tuple[StepState, Action]]) -> dict[tuple, Effect | Exception]:
        """Effects of (who, state key, call) jobs, in parallel over states and over chunks of a state's calls."""
        by_state: dict[str, list[tuple[tuple, Action]]] = {}
        states: dict[str, StepState] = {}
        for key, (state, action) in jobs.items():
            by_state.setdefault(state.key, []).append((key, action))
            states[state.key] = state
        per = max(4, -(-len(jobs) // self.cfg.workers))
        futures = [
            self._threads.submit(self._run_group, states[skey], calls[i : i + per])
            for skey, calls in by_state.items()
            for i in range(0, len(calls), per)
        ]
        results: dict[tuple, Effect | Exception] = {}
        for fut in futures:
            results.update(fut.result())
        return results

    def effects(self, pairs: Sequence[tuple[StepState, Action, bool]]) -> list[Effect | Exception | None]:
        """The effect of each (state, call, is_expert's) triple: cached, or run (expert's and
        policy's calls together, each distinct one once)."""
        caches = {True: self.expert_cache, False: self.policy_cache}
        keys = [(who, s.key, a.canonical()) for s, a, who in pairs]
        jobs = {
            k: (s, a) for k, (s, a, who) in zip(keys, pairs, strict=True) if caches[who].get(k[1:]) is None
        }
        got = self._run(jobs) if jobs else {}
        self.last.executed += len(jobs)
        for k, eff in got.items():
            if isinstance(eff, Effect):
                caches[k[0]].put(k[1:], eff)
        return [got.get(k) or caches[k[0]].get(k[1:]) for k in keys]

    # -- the reward

    def __call__(self, completions: Sequence[Any], expert_action: Sequence[str] | str,
                 instance_id: Sequence[str] | None = None, state: Sequence[Any] | None = None,
                 step: Sequence[int] | None = None, require_think: bool = True, **kwargs: Any) -> list[float]:  # fmt: skip
        """Execution rewards, one per completion (TRL's reward signature plus the rows' columns):
        each row's `state` column, else the scorer's `states` by `instance_id#step`."""
        n = len(completions)
        ids = list(instance_id) if instance_id is not None else [""] * n
        if state is not None:
            states = [row_state(i, st) for i, st in zip(ids, state, strict=True)]
        else:
            steps = list(step) if step is not None else [0] * n
            states = [self.states.get(f"{i}#{int(k)}") for i, k in zip(ids, steps, strict=True)]
        return self.score(completions, expert_action, states, require_think)

    def score(self, completions: Sequence[Any], expert_action: Sequence[str] | str,
              states: Sequence[StepState | None], require_think: bool = True) -> list[float]:  # fmt: skip
        """Execution rewards for completions whose step states are given (None: text reward)."""
        t0 = time.perf_counter()
        n = len(completions)
        experts = [expert_action] * n if isinstance(expert_action, str) else list(expert_action)
        if len(experts) != n or len(states) != n:
            raise ValueError(f"{n} completions but {len(experts)} expert actions and {len(states)} states")
        stats = self.last = BatchStats(completions=n)
        rewards: list[float | None] = [None] * n
        text = srl_reward(completions, experts, compare="text", require_think=require_think)
        pending: list[tuple[int, StepState, Action, Action]] = []
        for i, (c, e) in enumerate(zip(completions, experts, strict=True)):
            call = parse_call(completion_text(c), require_think)
            if call is None:
                rewards[i] = FORMAT_FAILURE
                stats.format_failures += 1
                continue
            ecall = _expert_call(e)
            state = states[i]
            if ecall is None or state is None or state.instance_id not in self.instances:
                rewards[i] = text[i]
                stats.fallback += 1
                continue
            if call.canonical() == ecall.canonical():
                rewards[i] = 1.0
                stats.exact += 1
            elif call.name == "submit":
                rewards[i] = similarity(state.patch, state.final_patch)
                stats.submits += 1
            elif ecall.name == "submit":
                rewards[i] = 0.0
            else:
                pending.append((i, state, call, ecall))
        if pending:
            got = self.effects(
                [(s, e, True) for _, s, _, e in pending] + [(s, c, False) for _, s, c, _ in pending]
            )
            for k, (i, _, _, _) in enumerate(pending):
                ee, pe = got[k], got[len(pending) + k]
                for eff in (ee, pe):
                    if isinstance(eff, Exception):
                        stats.errors.append(str(eff))
                if isinstance(ee, Effect) and not ee.failed and isinstance(pe, Effect):
                    rewards[i] = effect_similarity(pe, ee)
                    stats.failed += bool(pe.failed)
                else:  # the expert's effect (or the sandbox) failed: the text reward
                    rewards[i] = text[i]
                    stats.fallback += 1
        stats.seconds = time.perf_counter() - t0
        if stats.errors:
            log.warning(
                "execution reward: %d sandbox error(s), text reward used: %s",
                len(stats.errors),
                stats.errors[0][:200],
            )
        return [float(r) for r in rewards]  # type: ignore[arg-type]


def _shutdown(pool: SandboxPool, threads: ThreadPoolExecutor) -> None:
    threads.shutdown(wait=True)
    pool.close()


def execution_reward(completions: Sequence[Any], expert_action: Sequence[str] | str, scorer: ExecutionScorer,
                     mode: str = "execution", text_weight: float = 0.5, require_think: bool = True,
                     **kwargs: Any) -> list[float]:  # fmt: skip
    """`execution`: the scorer's rewards; `mixed`: `text_weight * text + (1 - text_weight) * execution`
    (format failures stay -1). Step states come from `states=` (a list of StepState) or from the
    rows' columns (`instance_id` and `state`, as TRL passes them)."""
    if "states" in kwargs:
        ex = scorer.score(completions, expert_action, kwargs["states"], require_think)
    else:
        ex = scorer(completions, expert_action, require_think=require_think, **kwargs)
    if mode == "execution":
        return ex
    tx = srl_reward(completions, expert_action, compare="text", require_think=require_think)
    return [
        FORMAT_FAILURE if e == FORMAT_FAILURE else text_weight * t + (1 - text_weight) * e
        for t, e in zip(tx, ex, strict=True)
    ]
