"""SWE-bench's official eval script for a classic instance (swebench 4.1's builder, ported).

swebench 4.1 builds the evaluation of an instance that carries only the SWE-bench dataset fields
from a per-repository, per-version table (`MAP_REPO_VERSION_TO_SPECS`) with
`make_eval_script_list` (`_py` for Python repositories, `_js` for SWE-bench Multimodal, the
common builder for Multilingual); swebench 5, which the project pins, dropped both. The table is
`data/swebench41_specs.json`, dumped from swebench 4.1 itself by `scripts/gen_swebench_specs.py`,
and this module reproduces the builder line for line (`tests/harness/test_official.py` checks every
key of the table against the scripts swebench 4.1 made). It needs no network: only the
environment-image scripts, not built here, fetch files from GitHub.

    script = eval_script(instance)   # the text of SWE-bench's eval.sh for this instance

The script activates the image's `testbed` environment, runs the version's `eval_commands`, prints
the repository state (`git status`, `git show`, `git diff`), reinstalls (`install`), resets the
test files to base_commit, applies `test_patch` from a heredoc, runs the test command with the
test patch's files as arguments between the `: '>>>>> Start Test Output'` and `End` markers, and
resets the test files again.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

SPECS_FILE = Path(__file__).parent / "data" / "swebench41_specs.json"
ENV_NAME = "testbed"
REPO_DIR = "/testbed"
HEREDOC_DELIMITER = "EOF_114329324912"
START_TEST_OUTPUT = ">>>>> Start Test Output"
END_TEST_OUTPUT = ">>>>> End Test Output"
HEADER = ["#!/bin/bash", "set -uxo pipefail"]
"""swebench's `TestSpec.eval_script` header: no `-e`, the test files are reset at the end."""


class NoOfficialScript(ValueError):
    """swebench 4.1 has no eval script for this instance (unknown repository or version, or none
    exists for that version); the message says which."""


@functools.cache
def load_specs() -> dict[str, Any]:
    """The data file: `specs[repo][version]`, `languages[repo]`, `non_test_exts`, `no_eval_script`."""
    return json.loads(SPECS_FILE.read_text(encoding="utf-8"))


def specs_for(repo: str, version: str) -> dict[str, Any]:
    data = load_specs()
    if repo not in data["specs"]:
        raise NoOfficialScript(f"swebench 4.1 has no specs for repository {repo!r}")
    versions = data["specs"][repo]
    if version not in versions:
        known = ", ".join(versions)
        raise NoOfficialScript(f"swebench 4.1 has no specs for {repo} version {version!r} (it has {known})")
    why = data["no_eval_script"].get(repo, {}).get(version)
    if why:
        raise NoOfficialScript(f"swebench 4.1 cannot build an eval script for {repo} {version}: {why}")
    return versions[version]


def modified_files(patch: str) -> list[str]:
    """Files a patch changes that exist before it (swebench's `get_modified_files`)."""
    from unidiff import PatchSet

    return [f.source_file[2:] for f in PatchSet(patch) if f.source_file.startswith("a/")]


def test_directives(instance: dict[str, Any]) -> list[str]:
    """The test patch's files, as the repository's runner takes them (swebench 4.1's
    `get_test_directives`: data files dropped; django: dotted module names under tests/)."""
    if instance["repo"] == "swe-bench/humaneval":
        return ["test.py"]
    non_test = load_specs()["non_test_exts"]
    directives = re.findall(r"diff --git a/.* b/(.*)", instance["test_patch"])
    directives = [d for d in directives if not any(d.endswith(ext) for ext in non_test)]
    if instance["repo"] == "django/django":
        out = []
        for d in directives:
            d = d[: -len(".py")] if d.endswith(".py") else d
            d = d[len("tests/") :] if d.startswith("tests/") else d
            out.append(d.replace("/", "."))
        directives = out
    return directives


def _heredoc_apply(cmd: str, test_patch: str) -> str:
    return f"{cmd} - <<'{HEREDOC_DELIMITER}'\n{test_patch}\n{HEREDOC_DELIMITER}"


def _eval_list_py(instance: dict[str, Any], specs: dict[str, Any], env_name: str, repo_dir: str) -> list[str]:
    base, test_patch = instance["base_commit"], instance["test_patch"]
    reset = f"git checkout {base} {' '.join(modified_files(test_patch))}"
    test_command = " ".join([specs["test_cmd"], *test_directives(instance)])
    cmds = ["source /opt/miniconda3/bin/activate", f"conda activate {env_name}", f"cd {repo_dir}"]
    cmds += specs.get("eval_commands", [])
    cmds += [
        f"git config --global --add safe.directory {repo_dir}",
        f"cd {repo_dir}",
        "git status",
        "git show",
        f"git -c core.fileMode=false diff {base}",
        "source /opt/miniconda3/bin/activate",
        f"conda activate {env_name}",
    ]
    if "install" in specs:
        cmds.append(specs["install"])
    return [
        *cmds,
        reset,
        _heredoc_apply("git apply -v", test_patch),
        f": '{START_TEST_OUTPUT}'",
        test_command,
        f": '{END_TEST_OUTPUT}'",
        reset,
    ]


def _eval_list_common(
    instance: dict[str, Any], specs: dict[str, Any], env_name: str, repo_dir: str
) -> list[str]:
    base, test_patch = instance["base_commit"], instance["test_patch"]
    files = modified_files(test_patch)
    reset = f"git checkout {base} {' '.join(files)}" if files else 'echo "No test files to reset"'
    test_cmd = specs["test_cmd"]
    return [
        f"cd {repo_dir}",
        f"git config --global --add safe.directory {repo_dir}",
        f"cd {repo_dir}",
        reset,
        _heredoc_apply("git apply --verbose --reject", test_patch),
        *specs.get("build", []),
        f": '{START_TEST_OUTPUT}'",
        *([test_cmd] if isinstance(test_cmd, str) else test_cmd),
        f": '{END_TEST_OUTPUT}'",
        reset,
    ]


# wp-calypso's Jest configuration file by version (swebench 4.1 `get_test_cmds_calypso`).
_CALYPSO_JS_CONFIG = {"10.10.0", "10.12.0", "10.13.0", "10.14.0", "10.15.2", "10.16.3"}
_CALYPSO_JSON_CONFIG = {
    *("6.11.5", "8.9.1", "8.9.3", "8.9.4", "8.11.0", "8.11.2"),
    *("10.4.1", "10.5.0", "10.6.0", "10.9.0"),
}


def _calypso_test_cmds(instance: dict[str, Any]) -> list[str]:
    from unidiff import PatchSet

    cmds = []
    for path in (f.path for f in PatchSet(instance["test_patch"])):
        if re.search(r"__snapshots__/(.*).js.snap$", path):
            path = "/".join(path.split("/")[:-2])  # snapshots run through their test folder
        if any(path.startswith(x) for x in ("client", "packages")):
            pkg = path.split("/")[0]
            if instance["version"] in _CALYPSO_JS_CONFIG:
                cmds.append(f"./node_modules/.bin/jest --verbose -c=test/{pkg}/jest.config.js '{path}'")
            elif instance["version"] in _CALYPSO_JSON_CONFIG:
                cmds.append(f"./node_modules/.bin/jest --verbose -c=test/{pkg}/jest.config.json '{path}'")
            else:
                cmds.append(f"npm run test-{pkg} --verbose '{path}'")
        elif path.startswith("test/e2e"):
            cmds += ["cd test/e2e", f"NODE_CONFIG_ENV=test npm run test {path}", "cd ../.."]
    return cmds


def _image_download_cmds(instance: dict[str, Any]) -> list[str]:
    """SWE-bench Multimodal: the test patch's images, fetched inside the container (needs network)."""
    assets = instance.get("image_assets") or {}
    if isinstance(assets, str):
        assets = json.loads(assets)
    cmds = []
    for a in assets.get("test_patch", []):
        folder = str(Path(a["path"]).parent)
        cmds += [f"mkdir -p {folder}", f"curl -o {a['path']} {a['url']}", f"chmod 777 {a['path']}"]
    return cmds


def _eval_list_js(instance: dict[str, Any], specs: dict[str, Any], env_name: str, repo_dir: str) -> list[str]:
    cmds = _eval_list_common(instance, specs, env_name, repo_dir)
    cmds[4:4] = _image_download_cmds(instance)  # after the test-file reset, before the test patch
    if instance["repo"] == "Automattic/wp-calypso":
        i = cmds.index(f": '{START_TEST_OUTPUT}'")
        j = cmds.index(f": '{END_TEST_OUTPUT}'")
        cmds[i + 1 : j] = _calypso_test_cmds(instance)
    return cmds


_BUILDERS = {"py": _eval_list_py, "js": _eval_list_js}


def eval_script_list(
    instance: dict[str, Any], env_name: str = ENV_NAME, repo_dir: str = REPO_DIR
) -> list[str]:
    """swebench 4.1's `make_eval_script_list(instance, specs, env_name, repo_dir, base_commit,
    test_patch)` for the instance's repository and version; raises `NoOfficialScript`."""
    repo, version = instance["repo"], str(instance.get("version") or "")
    specs = specs_for(repo, version)
    inst = {**instance, "version": version, "test_patch": instance.get("test_patch") or ""}
    lang = load_specs()["languages"][repo]
    return _BUILDERS.get(lang, _eval_list_common)(inst, specs, env_name, repo_dir)


def eval_script(instance: dict[str, Any]) -> str:
    """The text of the official eval.sh (`TestSpec.eval_script` of swebench 4.1's `make_test_spec`)."""
    return "\n".join([*HEADER, *eval_script_list(instance)]) + "\n"
