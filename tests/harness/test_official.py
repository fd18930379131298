"""The official eval scripts: the project's builder against swebench 4.1's own output, key by key.

`tests/harness/data/swebench41_eval_scripts.json.gz` holds, for every (repo, version) of swebench
4.1's `MAP_REPO_VERSION_TO_SPECS` and each synthetic instance, the script swebench 4.1's
`make_test_spec` returned (made by `scripts/gen_swebench_specs.py`), so no network and no swebench
4.1 are needed here. Then how `instance.py` splits and runs such scripts.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from swesrl.envs.base import SandboxConfig
from swesrl.harness import Status, grade_patch, official
from swesrl.harness.instance import ACTIVATE, _eval_parts
from swesrl.harness.spec import make_eval_spec, split_eval_script

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "data" / "swebench41_eval_scripts.json.gz"
GENERATOR = ROOT / "scripts" / "gen_swebench_specs.py"


@functools.cache
def expected() -> dict:
    return json.loads(gzip.decompress(FIXTURE.read_bytes()))


REPOS = list(official.load_specs()["specs"])


@pytest.mark.parametrize("repo", REPOS)
def test_builder_gives_swebench41_scripts_for_every_version(repo):
    fx = expected()
    versions = official.load_specs()["specs"][repo]
    lacking = official.load_specs()["no_eval_script"].get(repo, {})
    diffs = []
    for case, inst in fx["instances"].items():
        scripts = fx["scripts"][case].get(repo, {})
        assert set(scripts) == set(versions) - set(lacking), f"{case}: fixture and data file disagree"
        for version, want in scripts.items():
            got = official.eval_script({**inst, "repo": repo, "version": version})
            if got != want:
                diff = difflib.unified_diff(
                    want.splitlines(), got.splitlines(), "swebench 4.1", "swesrl", lineterm=""
                )
                diffs.append(f"{repo} {version} ({case}):\n" + "\n".join(diff))
        for version in lacking:  # swebench 4.1 itself cannot build these (no test_cmd)
            with pytest.raises(official.NoOfficialScript, match="cannot build"):
                official.eval_script({**inst, "repo": repo, "version": version})
    assert not diffs, "\n\n".join(diffs[:3])


def test_data_file_covers_swebench41_and_classic_instances_use_it():
    data = official.load_specs()
    n = sum(len(v) for v in data["specs"].values())
    n_scripts = sum(len(v) for v in expected()["scripts"]["main"].values())
    lacking = sum(len(v) for v in data["no_eval_script"].values())
    assert len(data["specs"]) >= 60 and n_scripts == n - lacking and n_scripts > 650
    assert {"django/django", "sympy/sympy", "Automattic/wp-calypso", "tokio-rs/tokio"} <= set(data["specs"])
    assert set(data["languages"].values()) == {"py", "js", "c", "go", "java", "php", "rb", "rs"}
    inst = {**expected()["instances"]["main"], "repo": "sympy/sympy", "version": "1.12"}
    spec = make_eval_spec(inst)
    assert spec.kind == "classic" and not spec.problems
    assert spec.eval_script == expected()["scripts"]["main"]["sympy/sympy"]["1.12"]


def _swebench41_python() -> str | None:
    py = os.environ.get("SWEBENCH41_PYTHON", "/tmp/sb41/bin/python")
    if not Path(py).exists():
        return None
    code = "import swebench, sys; sys.exit(swebench.__version__ != '4.1.0')"
    return py if subprocess.run([py, "-c", code], capture_output=True).returncode == 0 else None


@pytest.mark.skipif(
    _swebench41_python() is None,
    reason="swebench 4.1.0 not importable (side venv: set SWEBENCH41_PYTHON; see scripts/gen_swebench_specs.py)",
)
def test_regenerating_with_swebench41_gives_the_same_files(tmp_path):
    """The data file and fixture are what the generator makes, offline (no network namespace where
    `unshare` allows one)."""
    cmd = [_swebench41_python(), str(GENERATOR), "--specs-out", str(tmp_path / "s.json")]
    cmd += ["--scripts-out", str(tmp_path / "e.json.gz")]
    if (
        shutil.which("unshare")
        and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0
    ):
        cmd = ["unshare", "-rn", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "s.json").read_bytes() == official.SPECS_FILE.read_bytes()
    assert (tmp_path / "e.json.gz").read_bytes() == FIXTURE.read_bytes()


# -- how instance.py runs an eval script ------------------------------------------------------


def test_split_skips_markers_inside_heredocs_and_keeps_the_header():
    tp = "diff --git a/t.py b/t.py\n--- a/t.py\n+++ b/t.py\n@@ -1 +1,2 @@\n x\n+print(\": '>>>>> Start Test Output'\")\n"
    script = "\n".join(
        [
            "#!/bin/bash",
            "set -uxo pipefail",
            "cd /testbed",
            f"git apply -v - <<'EOF_114329324912'\n{tp}\nEOF_114329324912",
            "cat <<EOF > notes.txt\n>>>>> End Test Output\nEOF",
            ": '>>>>> Start Test Output'",
            "pytest t.py",
            ": '>>>>> End Test Output'",
            "git checkout abc t.py",
            "",
        ]
    )
    header, setup, tests = split_eval_script(script)
    assert header == ["set -uxo pipefail"] and tests == ["pytest t.py"]
    assert setup[0] == "cd /testbed" and setup[-1] == "EOF" and tp.rstrip("\n") in "\n".join(setup)
    with pytest.raises(ValueError, match="markers"):
        split_eval_script("#!/bin/bash\npytest\n")


def test_eval_parts_of_each_kind():
    fx = expected()
    flask = {**fx["instances"]["main"], "repo": "pallets/flask", "version": "2.3"}
    official_lines = official.eval_script_list(flask)
    start = official_lines.index(": '>>>>> Start Test Output'")
    setup, tests = _eval_parts(make_eval_spec(flask))
    # the harness resets every file the test patch touches first (the official reset covers only
    # files that exist at base_commit: a model patch could otherwise pre-create tests/forms_tests/...)
    assert setup[0] == "set -uxo pipefail" and "rm -rf -- tests/forms_tests/test_added.py" in setup[1]
    assert "\n".join(setup[2:-1]) == "\n".join(official_lines[:start])  # then the official set-up
    assert setup[-1] == 'export SWESRL_EVAL_CWD="$PWD"'
    assert tests[0] == 'cd "${SWESRL_EVAL_CWD:-/testbed}"; unset SWESRL_EVAL_CWD'
    assert tests[1:] == ["set -uxo pipefail", official_lines[start + 1]]
    assert official_lines[start + 1] == "pytest -rA " + " ".join(official.test_directives(flask))

    calc = {
        "instance_id": "demo__calc-1",
        "repo": "demo/calc",
        "base_commit": "abc",
        "test_patch": fx["instances"]["new_only"]["test_patch"],
        "test_cmd": "python3 -m pytest -rA tests/test_fresh.py",
    }
    spec = make_eval_spec(calc)
    assert spec.kind == "test_cmd" and spec.test_cmd == calc["test_cmd"]
    header, setup, tests = split_eval_script(spec.eval_script)
    assert header == [] and setup[0].startswith("cd /testbed && if git cat-file -e abc:tests/test_fresh.py")
    assert tests == ["cd /testbed", ACTIVATE, calc["test_cmd"]]
    assert "\n".join(setup[1:]) == calc["test_patch"] + "EOF_114329324912"
    setup2, tests2 = _eval_parts(spec)
    assert setup2[:-1] == setup and tests2[1:] == tests  # no second reset, no `set -x` added


def test_model_cannot_precreate_a_file_the_test_patch_adds(calc_suite, calc_mirror):
    """swebench-5-style script (as the official ones, it resets only files base_commit has): a patch
    that writes the test patch's new test file itself does not get its own test graded."""
    src = calc_suite[1]["demo__calc-2"]
    script = "\n".join(
        [
            "#!/bin/bash",
            "set -uxo pipefail",
            "cd /testbed",
            "git apply -v - <<'EOF_114329324912'",
            src["test_patch"],
            "EOF_114329324912",
            ": '>>>>> Start Test Output'",
            src["test_cmd"],
            ": '>>>>> End Test Output'",
        ]
    )
    inst = {k: v for k, v in src.items() if k != "test_cmd"}
    inst.update(eval_script=script, log_parser="parse_log_pytest", eval_type="pass_and_fail")
    cheat = (
        "diff --git a/tests/test_neg.py b/tests/test_neg.py\nnew file mode 100644\n--- /dev/null\n"
        "+++ b/tests/test_neg.py\n@@ -0,0 +1,2 @@\n+def test_neg():\n+    pass\n"
    )
    cfg = SandboxConfig(backend="local")
    assert grade_patch(inst, src["patch"], cfg, calc_mirror, timeout=120)["status"] == Status.RESOLVED.value
    rep = grade_patch(inst, cheat, cfg, calc_mirror, timeout=120)
    assert rep["status"] == Status.UNRESOLVED.value
    assert rep["tests_status"]["FAIL_TO_PASS"]["failure"] == ["tests/test_neg.py::test_neg"]
