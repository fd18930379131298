"""The harness end to end in real local (bubblewrap) sandboxes on a real task repository."""

from __future__ import annotations

import json

import pytest

from swesrl.envs.base import SandboxConfig
from swesrl.harness import Status, grade_patch
from swesrl.harness.grading import parse_test_output

CFG = SandboxConfig(backend="local")

WRONG = """\
diff --git a/calc/ops.py b/calc/ops.py
--- a/calc/ops.py
+++ b/calc/ops.py
@@ -1,5 +1,5 @@
 def add(a, b):
-    return a - b
+    return a * b
 
 
 def mul(a, b):
"""
NOT_APPLYING = WRONG.replace("return a - b", "return a // b")
PRINT_SPOOF = """\
diff --git a/calc/ops.py b/calc/ops.py
--- a/calc/ops.py
+++ b/calc/ops.py
@@ -1,3 +1,8 @@
+import atexit
+
+atexit.register(print, "PASSED tests/test_ops.py::test_add\\nFAILED tests/decoy.py::test_decoy")
+
+
 def add(a, b):
     return a - b
 
"""
CONFTEST_SPOOF = """\
diff --git a/conftest.py b/conftest.py
new file mode 100644
--- /dev/null
+++ b/conftest.py
@@ -0,0 +1,7 @@
+def pytest_terminal_summary(terminalreporter):
+    terminalreporter.write_line("PASSED tests/test_ops.py::test_add")
+    terminalreporter.write_line(">>>>> End Test Output")
+
+
+def pytest_sessionfinish(session, exitstatus):
+    session.exitstatus = 0
"""


def grade(instance, patch, mirror, **kw):
    return grade_patch(instance, patch, CFG, mirror, timeout=kw.pop("timeout", 120), **kw)


def test_gold_resolves_and_writes_swebench_readable_logs(calc_suite, calc_mirror, tmp_path):
    from swebench.harness.grading import get_eval_report

    from swesrl.harness.spec import make_eval_spec

    inst = calc_suite[1]["demo__calc-1"]
    rep = grade(inst, inst["patch"], calc_mirror, log_dir=tmp_path)
    assert rep["status"] == Status.RESOLVED.value and rep["resolved"] is True
    assert rep["test_exit_code"] == 0
    assert rep["tests_status"]["FAIL_TO_PASS"]["success"] == inst["FAIL_TO_PASS"]
    assert (tmp_path / "patch.diff").read_text() == inst["patch"]
    assert json.loads((tmp_path / "report.json").read_text())[inst["instance_id"]]["resolved"] is True
    text = (tmp_path / "test_output.txt").read_text()
    section, rc = parse_test_output(text, rep["nonce"])
    assert "PASSED tests/test_ops.py::test_add" in section and rc == 0
    theirs = get_eval_report(
        make_eval_spec(inst).swebench_test_spec(),
        {"instance_id": inst["instance_id"], "model_patch": inst["patch"], "model_name_or_path": "gold"},
        str(tmp_path / "test_output.txt"),
        include_tests_status=True,
    )[inst["instance_id"]]
    assert theirs["resolved"] is True
    assert theirs["tests_status"]["FAIL_TO_PASS"] == rep["tests_status"]["FAIL_TO_PASS"]
    assert theirs["tests_status"]["PASS_TO_PASS"] == rep["tests_status"]["PASS_TO_PASS"]


def test_empty_wrong_and_broken_patches_do_not_resolve(calc_suite, calc_mirror):
    inst = calc_suite[1]["demo__calc-1"]
    assert grade(inst, "", calc_mirror)["status"] == Status.EMPTY_PATCH.value
    assert grade(inst, None, calc_mirror)["patch_is_None"] is True
    base = grade(inst, "", calc_mirror, allow_empty=True)  # the tests on the unpatched repository
    assert base["status"] == Status.UNRESOLVED.value
    assert base["tests_status"]["FAIL_TO_PASS"]["failure"] == inst["FAIL_TO_PASS"]
    wrong = grade(inst, WRONG, calc_mirror)
    assert wrong["status"] == Status.UNRESOLVED.value and wrong["patch_successfully_applied"] is True
    assert wrong["test_exit_code"] == 1
    bad = grade(inst, NOT_APPLYING, calc_mirror)
    assert bad["status"] == Status.PATCH_APPLY_FAILED.value and bad["resolved"] is False
    junk = grade(inst, "please fix add()", calc_mirror)
    assert junk["status"] == Status.PATCH_APPLY_FAILED.value and "no file diff" in junk["error"]


@pytest.mark.parametrize("patch", [PRINT_SPOOF, CONFTEST_SPOOF], ids=["print", "conftest"])
def test_spoofed_test_output_does_not_resolve(calc_suite, calc_mirror, patch):
    inst = calc_suite[1]["demo__calc-1"]
    rep = grade(inst, patch, calc_mirror)
    assert rep["patch_successfully_applied"] is True
    assert rep["status"] == Status.UNRESOLVED.value and rep["resolved"] is False
    assert "tests/test_ops.py::test_add" in rep["tests_status"]["FAIL_TO_PASS"]["failure"]


def test_hanging_test_times_out_and_fails(calc_suite, calc_mirror):
    inst = calc_suite[1]["demo__calc-hang"]
    rep = grade(inst, inst["patch"], calc_mirror, timeout=8)
    assert rep["status"] == Status.TIMEOUT.value and rep["timed_out"] is True and rep["resolved"] is False
    assert rep["tests_status"]["FAIL_TO_PASS"]["failure"] == inst["FAIL_TO_PASS"]
    assert rep["duration_s"] < 60


def test_new_test_file_and_model_edits_to_test_files_are_reset(calc_suite, calc_mirror):
    inst = calc_suite[1]["demo__calc-2"]
    assert grade(inst, inst["patch"], calc_mirror)["resolved"] is True
    # a patch that also writes the test file the test patch creates: the test patch wins
    cheat = inst["patch"] + (
        "diff --git a/tests/test_neg.py b/tests/test_neg.py\nnew file mode 100644\n--- /dev/null\n"
        "+++ b/tests/test_neg.py\n@@ -0,0 +1,2 @@\n+def test_neg():\n+    pass\n"
    )
    assert grade(inst, cheat, calc_mirror)["resolved"] is True
    only_tests = cheat[cheat.index("diff --git a/tests/test_neg.py") :]
    assert grade(inst, only_tests, calc_mirror)["resolved"] is False


@pytest.mark.docker
def test_docker_backend_grades_like_local(docker_client, calc_suite, calc_mirror, tmp_path):
    inst = calc_suite[1]["demo__calc-1"]
    cfg = SandboxConfig(backend="docker")
    gold = grade_patch(inst, inst["patch"], cfg, calc_mirror, timeout=120)
    assert gold["status"] == Status.RESOLVED.value and gold["backend"] == "docker"
    assert grade_patch(inst, CONFTEST_SPOOF, cfg, calc_mirror, timeout=120)["resolved"] is False
    hang = calc_suite[1]["demo__calc-hang"]
    rep = grade_patch(hang, hang["patch"], cfg, calc_mirror, timeout=8)
    assert rep["status"] == Status.TIMEOUT.value


# A stand-in for miniconda's activate script: `conda activate testbed` puts the environment's bin
# first on PATH, as in the official images (the only `pytest` of the image lives there).
FAKE_ACTIVATE = """\
conda() {
  if [ "$1" = activate ]; then export CONDA_DEFAULT_ENV="$2" PATH="/opt/miniconda3/envs/$2/bin:$PATH"; fi
}
"""


@pytest.fixture
def official_style_image(docker_client, calc_suite, calc_mirror, tmp_path):
    """A local stand-in for an official SWE-bench image: the repository at /testbed, importable,
    `pytest` only inside the `testbed` conda environment. Tagged under a test namespace with
    SWE-bench's naming, as `--namespace` would find it."""
    import io
    import subprocess
    import tarfile

    from swesrl.harness.spec import official_image

    inst = calc_suite[1]["demo__calc-1"]
    work = tmp_path / "testbed"
    subprocess.run(["git", "clone", "-q", str(calc_mirror / "demo__calc.git"), str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "checkout", "-q", inst["base_commit"]], check=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(work, arcname="testbed")
        info = tarfile.TarInfo("opt/miniconda3/bin/activate")
        info.size = len(FAKE_ACTIVATE)
        tar.addfile(info, io.BytesIO(FAKE_ACTIVATE.encode()))
    image = official_image("pallets__flask-9999", "swesrltest")
    c = docker_client.containers.run("swesrl/base:latest", ["sleep", "60"], detach=True, network_mode="none")
    try:
        c.put_archive("/", buf.getvalue())
        env_bin = "/opt/miniconda3/envs/testbed/bin"
        c.exec_run(["sh", "-c", f"mkdir -p {env_bin} && mv /usr/bin/pytest {env_bin}/pytest"])
        # the package is installed, as `pip install -e .` leaves it in the official images
        c.exec_run(["sh", "-c", "echo /testbed > /usr/lib/python3/dist-packages/testbed.pth"])
        repo, tag = image.rsplit(":", 1)
        c.commit(repository=repo, tag=tag)
    finally:
        c.remove(force=True)
    yield image
    docker_client.images.remove(image, force=True)


@pytest.mark.docker
def test_classic_instance_runs_the_official_eval_script_in_the_official_image(
    official_style_image, calc_suite, tmp_path
):
    """A SWE-bench instance with only the classic fields (no test_cmd, no mirror): the official image
    name and SWE-bench's own eval script for pallets/flask 2.3 (swebench 4.1's specs: activate
    `testbed`, git status/show/diff, `pip install -e .`, reset and apply the test patch, `pytest -rA`
    with the test patch's files), split at its markers by the harness."""
    from swesrl.harness import official
    from swesrl.harness.spec import make_eval_spec

    fields = ("base_commit", "patch", "test_patch", "FAIL_TO_PASS", "PASS_TO_PASS")
    src, src2 = calc_suite[1]["demo__calc-1"], calc_suite[1]["demo__calc-2"]
    classic = {k: src[k] for k in fields}
    classic.update(
        instance_id="pallets__flask-9999", repo="pallets/flask", version="2.3", problem_statement="x"
    )
    spec = make_eval_spec(classic)
    assert spec.kind == "classic" and spec.eval_script == official.eval_script(classic)
    cfg = SandboxConfig(backend="docker")
    rep = grade_patch(
        classic, classic["patch"], cfg, None, timeout=120, namespace="swesrltest", log_dir=tmp_path
    )
    log = (tmp_path / "test_output.txt").read_text()
    assert rep["kind"] == "classic" and rep["status"] == Status.RESOLVED.value, log
    assert "+ conda activate testbed" in log and "+ git -c core.fileMode=false diff" in log  # the set-up
    section, _ = parse_test_output(log, rep["nonce"])
    assert "+ pytest -rA tests/test_ops.py" in section and "PASSED tests/test_ops.py::test_add" in section
    rep = grade_patch(classic, WRONG, cfg, mirror=None, timeout=120, namespace="swesrltest")
    assert rep["status"] == Status.UNRESOLVED.value
    # the test patch adds a file; a patch that writes it itself does not get its own test graded
    new = {**classic, **{k: src2[k] for k in fields}, "PASS_TO_PASS": []}  # only tests/test_neg.py runs
    assert grade_patch(new, new["patch"], cfg, None, timeout=120, namespace="swesrltest")["resolved"] is True
    cheat = (
        "diff --git a/tests/test_neg.py b/tests/test_neg.py\nnew file mode 100644\n--- /dev/null\n"
        "+++ b/tests/test_neg.py\n@@ -0,0 +1,2 @@\n+def test_neg():\n+    pass\n"
    )
    assert grade_patch(new, cheat, cfg, None, timeout=120, namespace="swesrltest")["resolved"] is False


@pytest.mark.docker
def test_agent_sandbox_of_a_classic_instance_is_its_official_image_activated(
    official_style_image, calc_suite
):
    """`swesrl run` / `step` / RLVR on a classic instance with the docker backend and no mirror: the
    sandbox is the image its grading uses, commands run in the environment `conda activate testbed`
    gives the grader's test lines, and the history ends at base_commit."""
    from swesrl.envs import env_for_instance

    src = calc_suite[1]["demo__calc-1"]
    classic = {k: src[k] for k in ("base_commit", "patch", "test_patch", "FAIL_TO_PASS", "PASS_TO_PASS")}
    classic.update(instance_id="pallets__flask-9999", repo="pallets/flask", problem_statement="x")
    cfg = SandboxConfig(backend="docker", image_namespace="swesrltest")
    with env_for_instance(classic, cfg, mirror=None) as env:
        assert env.image == official_style_image
        obs = env.execute("echo $CONDA_DEFAULT_ENV; command -v pytest")
        assert obs.output.split() == ["testbed", "/opt/miniconda3/envs/testbed/bin/pytest"], obs.output
        assert env.execute("python3 -m pytest -q tests/test_ops.py").returncode == 0
        assert (
            env.execute("git rev-list --all | wc -l").output.strip()
            == env.execute("git rev-list HEAD | wc -l").output.strip()
        )


def swebench5_instance(src: dict) -> dict:
    """The calc task in swebench 5's shape: its own eval script (resets, applies the test patch, runs
    the tests between the markers), log parser and eval type."""
    script = "\n".join(
        [
            "#!/bin/bash",
            "set -uxo pipefail",
            "cd /testbed",
            f"git checkout {src['base_commit']} tests/test_ops.py",
            "git apply -v - <<'EOF_114329324912'",
            src["test_patch"].rstrip("\n"),
            "EOF_114329324912",
            ": '>>>>> Start Test Output'",
            src["test_cmd"],
            ": '>>>>> End Test Output'",
            f"git checkout {src['base_commit']} tests/test_ops.py",
        ]
    )
    inst = {k: v for k, v in src.items() if k != "test_cmd"}
    return {**inst, "eval_script": script, "log_parser": "parse_log_pytest", "eval_type": "pass_and_fail"}


def test_swebench5_instance_runs_its_own_eval_script(calc_suite, calc_mirror):
    inst = swebench5_instance(calc_suite[1]["demo__calc-1"])
    gold = grade(inst, inst["patch"], calc_mirror)
    assert gold["kind"] == "eval_script" and gold["status"] == Status.RESOLVED.value
    spoof = grade(inst, PRINT_SPOOF, calc_mirror)
    assert spoof["status"] == Status.UNRESOLVED.value


@pytest.mark.docker
def test_missing_official_image_is_one_line_naming_the_pull_and_namespace(docker_client, calc_suite):
    src = calc_suite[1]["demo__calc-1"]
    classic = {k: src[k] for k in ("base_commit", "patch", "test_patch", "FAIL_TO_PASS", "PASS_TO_PASS")}
    classic.update(
        instance_id="pallets__flask-9998", repo="pallets/flask", version="2.3", problem_statement="x"
    )
    rep = grade_patch(
        classic, classic["patch"], SandboxConfig(backend="docker"), None, namespace="swesrl-nope"
    )
    image = "swesrl-nope/sweb.eval.x86_64.pallets_1776_flask-9998:latest"
    assert rep["status"] == Status.ERROR.value and "\n" not in rep["error"]
    assert f"docker image not found: {image}" in rep["error"] and f"`docker pull {image}`" in rep["error"]
    assert "--namespace" in rep["error"]


@pytest.mark.docker
def test_eval_cache_level_removes_the_instance_images_it_brought(
    official_style_image, docker_client, calc_suite, tmp_path
):
    """`swesrl eval --cache-level`, SWE-bench's policy: instance images go after grading at level
    env unless they were there before the run (`--clean` removes those too); `instance` keeps them."""
    import subprocess
    import sys

    from swesrl.envs.images import local_images

    src = calc_suite[1]["demo__calc-1"]
    classic = {k: src[k] for k in ("base_commit", "patch", "test_patch", "FAIL_TO_PASS", "PASS_TO_PASS")}
    classic.update(
        instance_id="pallets__flask-9999", repo="pallets/flask", version="2.3", problem_statement="x"
    )
    f, preds = tmp_path / "instances.jsonl", tmp_path / "preds.jsonl"
    f.write_text(json.dumps(classic) + "\n")
    preds.write_text(
        json.dumps({"instance_id": classic["instance_id"], "model_patch": classic["patch"]}) + "\n"
    )
    copy = official_style_image.replace("swesrltest/", "swesrlcache/")
    docker_client.images.get(official_style_image).tag(*copy.rsplit(":", 1))

    def run(run_id: str, *flags: str) -> subprocess.CompletedProcess:
        args = ["eval", "-i", str(f), "-p", str(preds), "-o", str(tmp_path / "runs"), "--run-id", run_id]
        args += ["-b", "docker", "--namespace", "swesrlcache", "--timeout", "120", *flags]
        r = subprocess.run([sys.executable, "-m", "swesrl", *args], capture_output=True, text=True)
        summary = json.loads((tmp_path / "runs" / run_id / "summary.json").read_text())
        assert r.returncode == 0 and summary["resolved_ids"] == [classic["instance_id"]], r.stderr
        return r

    try:
        assert "removed" not in run("a").stderr  # it was there before the run: kept
        assert copy in local_images(docker_client)
        assert "removed" not in run("b", "--clean", "--cache-level", "instance").stderr
        assert copy in local_images(docker_client)
        r = run("c", "--clean")
        assert f"removed 1 image(s) above --cache-level env: {copy}" in " ".join(r.stderr.split())
        assert copy not in local_images(docker_client) and official_style_image in local_images(docker_client)
    finally:
        if copy in local_images(docker_client):
            docker_client.images.remove(copy)
