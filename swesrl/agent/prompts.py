"""The agent's configuration and the messages it sends, rendered from the Jinja2 templates in `agent.yaml`.

Everything that builds agent messages (the loop, `swesrl step`, the SRL data builder, the demo)
goes through `initial_messages` / `render_observation` / `render_format_error`, so a training
prompt and a run-time prompt are the same text.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from swesrl.agent.context import ContextPolicy
from swesrl.config import StrictModel, load_config
from swesrl.envs.base import WORKDIR, Observation, SandboxConfig
from swesrl.utils import UserError


class AgentConfig(StrictModel):
    system_template: str
    """System message: the tool descriptions and the `<think>` + one-call reply format."""
    task_template: str
    """First user message. Variables: every instance field (`problem_statement`, `repo`, ...) and `workdir`."""
    observation_template: str
    """User message after a tool ran. Variables: `output`, `returncode`, `timed_out`, `max_output_chars`."""
    format_error_template: str
    """User message after a reply that is not one well-formed call. Variable: `error` (what is wrong)."""
    submit_review_template: str = ""
    """If set, the first `submit` shows this (variable `diff`) and only a second `submit` ends the episode
    (SWE-smith's review step); empty: the first `submit` ends it."""
    max_output_chars: int = 20000
    """Observations longer than this are clipped (head and tail kept) by the observation template."""
    step_limit: int = 100
    """Most model queries per episode (format errors count); 0: no limit. Exit status `step_limit`."""
    token_limit: int = 0
    """Most tokens in one prompt (the model's tokenizer when it has one, else characters / 4); 0: no limit.
    Exit status `token_limit`."""
    time_limit: float = 0
    """Wall-clock seconds per episode, checked before each query; 0: no limit. Exit status `time_limit`."""
    max_format_errors: int = 3
    """Consecutive malformed replies that end the episode (exit status `format_errors`)."""
    command_timeout: float | None = None
    """Seconds per tool call; None: the sandbox's default timeout."""
    autosubmit: bool = True
    """On a limit exit, record the current diff as the submission (SWE-agent's autosubmission)."""
    context: ContextPolicy = ContextPolicy()
    """What the model sees of the history at each query (the same code builds SRL training prompts)."""
    sampling: dict[str, Any] = {}
    """Keyword arguments for `model.generate` (temperature, top_p, max_new_tokens, ...)."""
    sandbox: SandboxConfig = SandboxConfig()
    """The sandbox each episode runs in (`swesrl run --backend` overrides `sandbox.backend`)."""


def load_agent_config(sources: list[str | Path] | None = None) -> AgentConfig:
    """The bundled `agent.yaml`, then the given YAML files / `key=value` overrides."""
    return load_config(AgentConfig, ["agent.yaml", *(sources or [])])


@lru_cache(maxsize=64)
def _template(text: str) -> jinja2.Template:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
    try:
        return env.from_string(text)
    except jinja2.TemplateSyntaxError as e:
        raise UserError(f"agent template error: {e.message} (line {e.lineno})") from None


def render(text: str, **variables: Any) -> str:
    try:
        return _template(text).render(**variables)
    except jinja2.UndefinedError as e:
        raise UserError(f"agent template error: {e.message}") from None


def render_system(config: AgentConfig) -> str:
    return render(config.system_template, workdir=WORKDIR)


def render_task(config: AgentConfig, instance: dict) -> str:
    return render(config.task_template, **{"workdir": WORKDIR, **instance})


def render_observation(config: AgentConfig, obs: Observation) -> str:
    return render(
        config.observation_template,
        output=obs.output,
        returncode=obs.returncode,
        timed_out=obs.timed_out,
        max_output_chars=config.max_output_chars,
    )


def render_format_error(config: AgentConfig, error: str) -> str:
    return render(config.format_error_template, error=error)


def render_review(config: AgentConfig, diff: str) -> str:
    return render(config.submit_review_template, diff=diff)


def initial_messages(config: AgentConfig, instance: dict) -> list[dict]:
    """`[system, user(task)]`: how every episode and every training prompt starts."""
    return [
        {"role": "system", "content": render_system(config)},
        {"role": "user", "content": render_task(config, instance)},
    ]


render_prompt = initial_messages
