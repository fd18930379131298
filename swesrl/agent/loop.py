"""The think-then-act loop: query the model, parse one call, run it in the sandbox, observe.

Control flow is three exceptions: `FormatError` (the reply is fed back to the model),
`Submitted` (carries the patch) and `LimitsExceeded` (carries the exit status). Anything else
ends the episode with status `error` and the traceback in `info`. The trajectory (SWE-smith
messages + `info`) is written atomically after every step.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swesrl.agent.context import select_context
from swesrl.agent.prompts import (  # noqa: F401  (re-exported: the loop's public interface)
    AgentConfig,
    initial_messages,
    load_agent_config,
    render_format_error,
    render_observation,
    render_prompt,
    render_review,
    render_system,
    render_task,
)
from swesrl.core.actions import Action, FormatError, parse_action
from swesrl.envs.base import Environment, Observation
from swesrl.envs.tools import execute_action
from swesrl.utils import atomic_write_json


class Submitted(Exception):
    def __init__(self, patch: str):
        super().__init__("submitted")
        self.patch = patch


class LimitsExceeded(Exception):
    def __init__(self, status: str):
        super().__init__(status)
        self.status = status


def count_tokens(model: Any, messages: list[dict]) -> int:
    counter = getattr(model, "count_tokens", None)
    return counter(messages) if counter else sum(len(m["content"]) for m in messages) // 4


class Agent:
    def __init__(self, instance: dict, model: Any, env: Environment, config: AgentConfig, traj_path=None):
        self.instance, self.model, self.env, self.config = instance, model, env, config
        self.traj_path = Path(traj_path) if traj_path else None
        self.messages = initial_messages(config, instance)
        self.n_steps = self.n_format_errors = self.consecutive_format_errors = 0
        self.reviewed = False
        self.start = time.monotonic()
        self.end: float | None = None
        self.info: dict[str, Any] = {"exit_status": None, "submission": ""}

    def query(self) -> str:
        c = self.config
        if c.step_limit and self.n_steps >= c.step_limit:
            raise LimitsExceeded("step_limit")
        if c.time_limit and time.monotonic() - self.start > c.time_limit:
            raise LimitsExceeded("time_limit")
        if c.max_format_errors and self.consecutive_format_errors >= c.max_format_errors:
            raise LimitsExceeded("format_errors")
        prompt = select_context(self.messages, c.context)
        if c.token_limit and count_tokens(self.model, prompt) > c.token_limit:
            raise LimitsExceeded("token_limit")
        self.n_steps += 1
        return self.model.generate(prompt, n=1, **c.sampling)[0]

    def act(self, response: str) -> Observation:
        self.add("assistant", response)
        _, action = parse_action(response)
        self.consecutive_format_errors = 0
        obs = self.execute(action)
        self.add("user", render_observation(self.config, obs))
        return obs

    def execute(self, action: Action) -> Observation:
        if action.name == "submit":
            patch = self.env.diff()
            if self.config.submit_review_template and not self.reviewed:
                self.reviewed = True
                return Observation(render_review(self.config, patch), 0)
            raise Submitted(patch)
        return execute_action(self.env, action, timeout=self.config.command_timeout)

    def step(self) -> Observation:
        return self.act(self.query())

    def guarded(self, fn: Callable, *args: Any) -> Any:
        """Run one part of a step; turn the loop's exceptions into feedback or an exit status."""
        try:
            return fn(*args)
        except FormatError as e:
            self.n_format_errors += 1
            self.consecutive_format_errors += 1
            self.add("user", render_format_error(self.config, str(e)))
        except Submitted as e:
            self.finish("submitted", e.patch)
        except LimitsExceeded as e:
            self.finish(e.status, safe_diff(self.env) if self.config.autosubmit else "")
        except Exception as e:
            self.finish("error", "", exception=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        finally:
            self.save()

    def run(self) -> dict:
        while self.info["exit_status"] is None:
            self.guarded(self.step)
        return self.trajectory()

    def add(self, role: str, content: str) -> None:
        self.messages.append({"role": role, "content": content})

    def finish(self, status: str, submission: str, **extra: Any) -> None:
        self.info.update(exit_status=status, submission=submission, **extra)
        self.end = time.monotonic()

    def trajectory(self) -> dict:
        info = {
            **self.info,
            "instance_id": self.instance["instance_id"],
            "model": getattr(self.model, "name", type(self.model).__name__),
            "n_steps": self.n_steps,
            "n_format_errors": self.n_format_errors,
            "elapsed_s": round((self.end or time.monotonic()) - self.start, 3),
        }
        return {"instance_id": self.instance["instance_id"], "messages": self.messages, "info": info}

    def save(self) -> None:
        if self.traj_path:
            atomic_write_json(self.traj_path, self.trajectory())


def safe_diff(env: Environment) -> str:
    """The diff for an autosubmission; a broken sandbox must not hide the exit status."""
    try:
        return env.diff()
    except Exception:
        return ""


def run_agent(instance: dict, model: Any, env: Environment, config: AgentConfig, traj_path=None) -> dict:
    """Run one episode to its end; returns (and saves after every step) the trajectory."""
    return Agent(instance, model, env, config, traj_path).run()
