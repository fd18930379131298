"""The agent's tools as commands in a sandbox: `bash` runs as is; `str_replace_editor` runs the
standalone editor script (installed in every sandbox at `EDITOR_PATH`), either forked by the
sandbox's command runner (`env.editor`) or as `python3 EDITOR_PATH <base64 JSON>` (any other
Environment), so no quoting can break the parameters and both backends give the same observations.
`submit` is handled by the agent loop, not here.
"""

from __future__ import annotations

import base64
import json
import shlex

from swesrl.envs.base import Environment, Observation
from swesrl.envs.common import EDITOR_PATH


def editor_command(params: dict[str, str]) -> str:
    """The shell command running the editor; big payloads go through a here-document on stdin
    (one execve argument is capped at 128 KiB)."""
    payload = base64.b64encode(json.dumps(params, ensure_ascii=False).encode("utf-8")).decode("ascii")
    if len(payload) < 64_000:
        return f"python3 {EDITOR_PATH} {shlex.quote(payload)}"
    lines = "\n".join(payload[i : i + 76] for i in range(0, len(payload), 76))
    return f"python3 {EDITOR_PATH} - <<'SWESRL_PAYLOAD'\n{lines}\nSWESRL_PAYLOAD"


def execute_action(env: Environment, action, timeout: float | None = None) -> Observation:
    """Run one parsed `Action` (name + string params) and return what the agent observes."""
    name, params = action.name, dict(action.params)
    if name == "bash":
        return env.execute(params.get("command", ""), timeout=timeout)
    if name == "str_replace_editor":
        if hasattr(env, "editor"):  # the backends' runner forks the editor: no interpreter start-up
            return env.editor(params, timeout=timeout)
        return env.execute(editor_command(params), timeout=timeout)
    raise ValueError(f"execute_action cannot run tool {name!r} (submit is handled by the agent loop)")
