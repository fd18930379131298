"""str_replace_editor / bash semantics, and the same observations in both backends."""

from __future__ import annotations

import pytest

from swesrl.core.actions import Action, parse_action
from swesrl.envs import SandboxConfig, make_env
from swesrl.envs.tools import execute_action

MOD = "/testbed/pkg/mod.py"


def ed(**params) -> Action:
    return Action("str_replace_editor", {k: str(v) for k, v in params.items()})


def bash(command: str) -> Action:
    return Action("bash", {"command": command})


SCRIPT = [
    bash("pwd && ls && git status --short && git log --oneline | wc -l"),
    bash("echo to-stderr >&2; echo to-stdout; exit 3"),
    bash("no_such_command_xyz"),
    ed(command="view", path="/testbed"),
    ed(command="view", path=MOD),
    ed(command="view", path=MOD, view_range="[4, -1]"),
    ed(command="view", path=MOD, view_range="[0, 2]"),
    ed(command="str_replace", path=MOD, old_str="return", new_str="return  "),
    ed(command="str_replace", path=MOD, old_str="x[2:]", new_str="x"),
    ed(command="str_replace", path=MOD, old_str="x[1:]", new_str="x[:]"),
    ed(command="insert", path=MOD, insert_line="2", new_str="# inserted\n# lines"),
    ed(command="insert", path=MOD, insert_line="99", new_str="x"),
    ed(command="undo_edit", path=MOD),
    ed(command="create", path=MOD, file_text="x"),
    ed(command="create", path="/testbed/pkg/new.py", file_text="VALUE = 'é ✓'\n"),
    ed(command="create", path="/testbed/missing/dir/a.py", file_text="x"),
    ed(command="view", path="pkg/mod.py"),
    ed(command="view", path="/testbed/nope.py"),
    ed(command="str_replace", path="/testbed/pkg", old_str="a", new_str="b"),
    bash("python3 -c 'from pkg.mod import first; print(first([1, 2, 3]))'"),
    bash("git diff --stat; git status --short"),
    bash("printf 'caf\\xe9 \\xff\\n'"),
]


def run_script(env) -> list[tuple[str, int]]:
    out = []
    for action in SCRIPT:
        obs = execute_action(env, action, timeout=60)
        out.append((obs.output, obs.returncode))
    out.append((env.diff(), 0))
    return out


def test_editor_semantics(env):
    obs = execute_action(env, ed(command="view", path=MOD))
    assert obs.output.startswith(f"Here's the result of running `cat -n` on {MOD}:\n")
    assert "     2\t    return x[1:]" in obs.output
    obs = execute_action(env, ed(command="str_replace", path=MOD, old_str="return", new_str="give"))
    assert obs.returncode != 0 and "Multiple occurrences of old_str `return` in lines [2, 6]" in obs.output
    obs = execute_action(env, ed(command="str_replace", path=MOD, old_str="nothere", new_str="x"))
    assert f"did not appear verbatim in {MOD}" in obs.output
    obs = execute_action(env, ed(command="str_replace", path=MOD, old_str="x[1:]", new_str="x[:]"))
    assert obs.returncode == 0 and f"The file {MOD} has been edited." in obs.output
    assert "return x[:]" in env.execute(f"cat {MOD}").output
    obs = execute_action(env, ed(command="create", path=MOD, file_text="x"))
    assert "Cannot overwrite files using command `create`" in obs.output
    obs = execute_action(env, ed(command="undo_edit", path=MOD))
    assert "undone successfully" in obs.output
    assert "return x[1:]" in env.execute(f"cat {MOD}").output
    obs = execute_action(env, ed(command="undo_edit", path=MOD))
    assert obs.output.strip() == f"No edit history found for {MOD}."
    obs = execute_action(env, ed(command="view", path=MOD, view_range="[5, 6]"))
    assert obs.output.splitlines()[1:] == ["     5\tdef twice(x):", "     6\t    return x + x"]


def test_editor_arguments_are_passed_verbatim(env):
    tricky = "s = '$HOME `id` \"q\" \\n'\n\t$(rm -rf /)\nEOF\n'\"'\"'\n"
    path = "/testbed/it's a file.py"
    obs = execute_action(env, ed(command="create", path=path, file_text=tricky))
    assert obs.returncode == 0, obs.output
    assert env.execute('cat "/testbed/it\'s a file.py"').output == tricky


def test_long_arguments_beyond_execve_limit(env):
    text = "line of text\n" * 30_000  # ~390 KB, more than one execve argument may hold
    obs = execute_action(env, ed(command="create", path="/testbed/big.txt", file_text=text))
    assert obs.returncode == 0, obs.output
    assert env.execute("wc -c < /testbed/big.txt").output.strip() == str(len(text))


def test_parsed_action_runs(env):
    _, action = parse_action(
        "<think>look</think>\n<function=bash>\n<parameter=command>\necho $((6*7))\n</parameter>\n</function>"
    )
    assert execute_action(env, action).output == "42\n"
    with pytest.raises(ValueError):
        execute_action(env, Action("submit", {}))


def test_undo_history_is_outside_the_diff(env):
    execute_action(env, ed(command="str_replace", path=MOD, old_str="x[1:]", new_str="x[2:]"))
    patch = env.diff()
    assert "pkg/mod.py" in patch and "history" not in patch and "swesrl" not in patch


@pytest.mark.docker
def test_same_observations_in_both_backends(repo, base_image):
    results = {}
    for backend in ("local", "docker"):
        with make_env(repo[0], repo[1], SandboxConfig(backend=backend)) as env:
            results[backend] = run_script(env)
    for action, local, docker in zip([*SCRIPT, "diff"], results["local"], results["docker"], strict=True):
        assert local == docker, f"{action}: local {local!r} != docker {docker!r}"
    assert results["local"][-4] == ("[1, 2, 3]\n", 0)


def test_forked_editor_matches_the_script(env):
    from swesrl.envs.tools import editor_command

    for params in (
        {"command": "view", "path": MOD, "view_range": "[1, 2]"},
        {"command": "view", "path": "/testbed"},
        {"command": "str_replace", "path": MOD, "old_str": "return", "new_str": "x"},
        {"command": "create", "path": MOD, "file_text": "x"},
        {"command": "view", "path": "relative.py"},
    ):
        forked, script = env.editor(params), env.execute(editor_command(params))
        assert (forked.output, forked.returncode) == (script.output, script.returncode)
