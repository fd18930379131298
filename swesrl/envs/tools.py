"""The agent's tools as commands in a sandbox: `bash` runs as is; `str_replace_editor` runs the
standalone editor script (installed in every sandbox at `EDITOR_PATH`) with its parameters as
base64 JSON, so no quoting can break them and both backends give the same observations.
`submit` is handled by the agent loop, not here.
"""

from __future__ import annotations

import base64
import json
import shlex

from swesrl.envs.base import Environment, Observation
from swesrl.envs.common import EDITOR_PATH


def editor_command(params: dict[str, str]) -> str:
    payload = base64.b64encode(json.dumps(params, ensure_ascii=False).encode("utf-8")).decode("ascii")
    return f"python3 {EDITOR_PATH} {shlex.quote(payload)}"


def execute_action(env: Environment, action, timeout: float | None = None) -> Observation:
    """Run one parsed `Action` (name + string params) and return what the agent observes."""
    name, params = action.name, dict(action.params)
    if name == "bash":
        return env.execute(params.get("command", ""), timeout=timeout)
    if name == "str_replace_editor":
        return env.execute(editor_command(params), timeout=timeout)
    raise ValueError(f"execute_action cannot run tool {name!r} (submit is handled by the agent loop)")
