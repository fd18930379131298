"""Red-team tests for the grader: patches that never fix the bug but try to be graded resolved.

Every patch here leaves `add()` broken (the FAIL_TO_PASS test must fail) and attacks the test
run instead: pytest hooks in conftest files, plugins switched on through the patch's own pytest
configuration, a shadowing `pytest` module, forged log lines with an early exit, a survivor that
rewrites the results after the tests end. Each must be graded unresolved, for a stated reason.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from swesrl.envs.base import SandboxConfig
from swesrl.harness import Status, grade_patch

CFG = SandboxConfig(backend="local")
F2P = "tests/test_ops.py::test_add"

MAKEREPORT = textwrap.dedent(
    """\
    import pytest


    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        outcome = yield
        rep = outcome.get_result()
        rep.outcome = "passed"
        rep.longrepr = None
    """
)
EARLY_EXIT = (
    "import os, sys\n"
    "if 'pytest' in sys.modules or '_pytest' in sys.modules:\n"
    "    lines = 'PASSED tests/test_ops.py::test_add\\nPASSED tests/test_ops.py::test_mul\\n'\n"
    "    lines += '=' * 20 + ' 2 passed in 0.01s ' + '=' * 20 + '\\n'\n"
    "    for fd in range(1, 64):  # past pytest's capture: its saved copy of the real stdout too\n"
    "        try:\n"
    "            os.write(fd, lines.encode())\n"
    "        except OSError:\n"
    "            pass\n"
    "    os._exit(0)\n"
)
FORGE = (
    "import glob, os, time\n"
    "end = time.time() + 4\n"
    "while time.time() < end:\n"
    "    for d in glob.glob('/tmp/swesrl_eval_*'):\n"
    "        try:\n"
    "            open(d + '/test.log', 'w').write("
    "'PASSED tests/test_ops.py::test_add\\nPASSED tests/test_ops.py::test_mul\\n')\n"
    "            open(d + '/rc', 'w').write('0\\n')\n"
    "        except OSError:\n"
    "            pass\n"
    "    time.sleep(0.005)\n"
)
SURVIVOR = (
    "import os, sys\n"
    "if 'pytest' in sys.modules and os.fork() == 0:\n"
    "    os.setsid()  # out of the command's session, and a fresh environment: no runner marker\n"
    f"    os.execve(sys.executable, [sys.executable, '-c', {FORGE!r}], {{}})\n"
)
FAKE_PYTEST = textwrap.dedent(
    """\
    print("PASSED tests/test_ops.py::test_add")
    print("PASSED tests/test_ops.py::test_mul")
    print("=" * 20 + " 2 passed in 0.01s " + "=" * 20)
    """
)
PLUGIN = "calc/_speedups.py"


def make_patch(mirror: Path, tmp: Path, files: dict[str, str]) -> str:
    """The diff that writes `files` (path -> text) on top of the base commit of the calc repo."""
    work = tmp / "work"
    subprocess.run(["git", "clone", "-q", str(mirror / "demo__calc.git"), str(work)], check=True)
    base_ops = (work / "calc" / "ops.py").read_text()
    for rel, text in files.items():
        p = work / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text.replace("{OPS}", base_ops))
    subprocess.run(["git", "-C", str(work), "add", "-A", "-f"], check=True)
    return subprocess.run(
        ["git", "-C", str(work), "diff", "--cached"], check=True, capture_output=True, text=True
    ).stdout


ATTACKS = {
    "conftest-root": {"conftest.py": MAKEREPORT},
    "conftest-tests": {"tests/conftest.py": MAKEREPORT},
    "conftest-deep": {"calc/sub/conftest.py": MAKEREPORT, "calc/sub/__init__.py": ""},
    "pytest.ini-plugin": {"pytest.ini": "[pytest]\naddopts = -p calc._speedups\n", PLUGIN: MAKEREPORT},
    "setup.cfg-plugin": {"setup.cfg": "[tool:pytest]\naddopts = -p calc._speedups\n", PLUGIN: MAKEREPORT},
    "tox.ini-plugin": {"tox.ini": "[pytest]\naddopts = -p calc._speedups\n", PLUGIN: MAKEREPORT},
    "pyproject-plugin": {
        "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-p calc._speedups"\n',
        PLUGIN: MAKEREPORT,
    },
    # pytest looks for its ini file first in the common ancestor of the test paths (tests/)
    "tests-dir-pytest.ini-plugin": {
        "tests/pytest.ini": "[pytest]\naddopts = -p calc._speedups\n",
        PLUGIN: MAKEREPORT,
    },
    "tests-dir-tox.ini-plugin": {
        "tests/tox.ini": "[pytest]\naddopts = -p calc._speedups\n",
        PLUGIN: MAKEREPORT,
    },
    "shadow-pytest": {"pytest.py": FAKE_PYTEST},
    "shadow-pytest-package": {"pytest/__init__.py": "", "pytest/__main__.py": FAKE_PYTEST},
    "sitecustomize": {
        "sitecustomize.py": EARLY_EXIT.replace("'pytest' in sys.modules or '_pytest' in sys.modules", "True")
    },
    "forged-log-early-exit": {"calc/ops.py": EARLY_EXIT + "\n\n{OPS}"},
    "survivor-rewrites-results": {"calc/ops.py": SURVIVOR + "\n\n{OPS}"},
}


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request):
    if request.param == "docker":
        request.getfixturevalue("docker_client")
        import docker

        try:
            request.getfixturevalue("docker_client").images.get(CFG.image)
        except docker.errors.ImageNotFound:
            pytest.skip(f"{CFG.image} missing; build it with docker/build_base_offline.sh")
    return request.param


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_patch_is_not_resolved(name, backend, calc_suite, calc_mirror, tmp_path):
    inst = calc_suite[1]["demo__calc-1"]
    patch = make_patch(calc_mirror, tmp_path, ATTACKS[name])
    rep = grade_patch(inst, patch, CFG.model_copy(update={"backend": backend}), calc_mirror, timeout=120)
    assert rep["patch_successfully_applied"] is True, rep
    assert rep["resolved"] is False and rep["status"] != Status.RESOLVED.value, rep
    assert F2P in rep["tests_status"]["FAIL_TO_PASS"]["failure"], rep


def test_gold_patch_with_a_harmless_config_change_still_resolves(calc_suite, calc_mirror, tmp_path):
    """Honest patches keep SWE-bench's semantics: a setup.cfg edit outside pytest's section counts."""
    inst = calc_suite[1]["demo__calc-1"]
    patch = inst["patch"] + make_patch(calc_mirror, tmp_path, {"setup.cfg": "[metadata]\nname = calc\n"})
    rep = grade_patch(inst, patch, CFG, calc_mirror, timeout=120)
    assert rep["resolved"] is True, rep
    assert not rep.get("test_infrastructure_reset"), rep
