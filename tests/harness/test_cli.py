"""`swesrl eval` as a user runs it: bundled tasks, SIGKILL and resume, dataset validation, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swesrl.core.instances import load_instances
from swesrl.harness import evaluate, load_predictions
from swesrl.tasks import build_suite


def swesrl(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "swesrl", *args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    """Four bundled tasks with mixed predictions: two gold, one empty, one that does not apply."""
    root = tmp_path_factory.mktemp("bundled")
    path = build_suite(root / "suite", n=4, seed=3)
    # the host's pytest plugins (hypothesis, benchmark, ...) cost seconds per run; these tests need none
    insts = [
        {**i, "test_cmd": "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 " + i["test_cmd"]} for i in load_instances(path)
    ]
    path.write_text("".join(json.dumps(i) + "\n" for i in insts))
    preds = [
        {"instance_id": insts[0]["instance_id"], "model_name_or_path": "m", "model_patch": insts[0]["patch"]},
        {"instance_id": insts[1]["instance_id"], "model_name_or_path": "m", "model_patch": insts[1]["patch"]},
        {"instance_id": insts[2]["instance_id"], "model_name_or_path": "m", "model_patch": ""},
        {"instance_id": insts[3]["instance_id"], "model_name_or_path": "m", "model_patch": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-nope\n+yes\n"},
    ]  # fmt: skip
    pf = root / "preds.jsonl"
    pf.write_text("".join(json.dumps(p) + "\n" for p in preds))
    return path, insts, pf


def normalised(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in ("run_id", "input_problems")}


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_gives_the_uninterrupted_summary(bundled, tmp_path):
    path, insts, pf = bundled
    out = tmp_path / "runs"
    args = ["eval", "-i", str(path), "-p", str(pf), "-o", str(out), "--run-id", "killed", "--timeout", "300"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "swesrl", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    first = out / "killed" / insts[0]["instance_id"] / "report.json"
    deadline = time.monotonic() + 240
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert first.exists(), "the run ended before it could be killed mid-way"
    reports = list((out / "killed").glob("*/report.json"))
    assert 1 <= len(reports) < 4 and not (out / "killed" / "summary.json").exists()
    for r in reports:  # what is on disk is whole
        json.loads(r.read_text())

    r = swesrl(*args, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "resuming killed" in r.stdout + r.stderr
    resumed = json.loads((out / "killed" / "summary.json").read_text())
    preds = [json.loads(x) for x in pf.read_text().splitlines()]
    full = evaluate(insts, preds, out, "uninterrupted", timeout=300, mirror=path.parent / "repos")
    assert normalised(resumed) == normalised(full)
    assert resumed["resolved_ids"] == sorted(i["instance_id"] for i in insts[:2])  # gold resolves
    assert resumed["empty_patch_ids"] == [insts[2]["instance_id"]]
    assert resumed["patch_apply_failed_ids"] == [insts[3]["instance_id"]]
    assert resumed["total_instances"] == 4 and resumed["submitted_instances"] == 4


def test_gold_validation_lists_broken_instances(calc_suite, tmp_path):
    path, insts = calc_suite
    good = insts["demo__calc-1"]
    broken = {**good, "instance_id": "demo__calc-broken", "FAIL_TO_PASS": ["tests/test_ops.py::test_mul"]}
    f = tmp_path / "instances.jsonl"
    f.write_text(json.dumps(good) + "\n" + json.dumps(broken) + "\n")
    r = swesrl("eval", "-i", str(f), "--gold", "-o", str(tmp_path / "v"), "--repo-mirror", str(path.parent / "repos"),
               "--workers", "2", "--timeout", "120")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "broken demo__calc-broken: empty patch resolves" in " ".join(r.stderr.split())
    res = json.loads((tmp_path / "v" / "validate.validation.json").read_text())
    assert res["valid_instances"] == 1 and list(res["broken"]) == ["demo__calc-broken"]


def test_bad_input_gives_one_line_errors(calc_suite, tmp_path, capsys):
    path, insts = calc_suite
    r = swesrl("eval", "-i", str(path), "-o", str(tmp_path))
    assert (
        r.returncode == 2 and "give --predictions FILE, or --gold" in r.stderr and "Traceback" not in r.stderr
    )
    r = swesrl("eval", "-i", str(tmp_path / "none.jsonl"), "-p", str(tmp_path / "p.jsonl"))
    assert r.returncode == 2 and "instances file not found" in r.stderr
    # the rest in process: the same command function, UserError for what stops the run
    from swesrl.harness.cli import eval_cmd
    from swesrl.utils import UserError

    kw = dict(out=tmp_path / "o", backend="local", workers=1, timeout=120.0, run_id=None, namespace="swebench",
              gold=False, ids=None, retry_errors=False, repo_mirror=path.parent / "repos", dry_run=False,
              cache_level="env", clean=False, unsafe=False)  # fmt: skip
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    with pytest.raises(UserError, match="no usable predictions"):
        eval_cmd(instances=path, predictions=bad, **kw)
    with pytest.raises(UserError, match="--backend must be local or docker"):
        eval_cmd(instances=path, predictions=bad, **{**kw, "backend": "podman"})
    # duplicate instance ids in the instances file: that id is left out, the others still run
    dup = tmp_path / "dup.jsonl"
    one = insts["demo__calc-1"]
    dup.write_text(
        "".join(json.dumps(x) + "\n" for x in (one, {**one, "FAIL_TO_PASS": []}, insts["demo__calc-2"]))
    )
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"instance_id": "demo__calc-2", "model_patch": ""}) + "\n")
    eval_cmd(instances=dup, predictions=preds, **kw)
    err = " ".join(capsys.readouterr().err.split())
    assert "demo__calc-1 appears several times" in err
    s = json.loads((tmp_path / "o" / "p" / "summary.json").read_text())
    assert s["total_instances"] == 1 and s["empty_patch_ids"] == ["demo__calc-2"]


def test_dry_run_prints_each_eval_script_and_runs_nothing(calc_suite, tmp_path):
    from swesrl.harness import official
    from swesrl.harness.spec import make_eval_spec

    path, insts = calc_suite
    calc = insts["demo__calc-1"]
    classic = {k: v for k, v in calc.items() if k != "test_cmd"}
    classic.update(instance_id="sympy__sympy-99999", repo="sympy/sympy", version="1.12")
    unknown = {**classic, "instance_id": "o__r-1", "repo": "o/r"}
    f = tmp_path / "instances.jsonl"
    f.write_text("".join(json.dumps(i) + "\n" for i in (calc, classic, unknown)))
    r = swesrl("eval", "-i", str(f), "--dry-run", "-o", str(tmp_path / "runs"))
    assert r.returncode == 1 and "o__r-1: no test command" in " ".join(r.stderr.split())
    assert make_eval_spec(calc).eval_script in r.stdout and official.eval_script(classic) in r.stdout
    assert "# kind: classic" in r.stdout and "sweb.eval.x86_64.sympy_1776_sympy-99999" in r.stdout
    assert not (tmp_path / "runs").exists()
    r = swesrl("eval", "-i", str(f), "--dry-run", "--ids", "demo__calc-1")
    assert r.returncode == 0 and r.stdout.count("#!/bin/bash") == 1


def test_help_texts():
    for cmd in ("eval", "oracle"):
        r = swesrl(cmd, "--help")
        assert r.returncode == 0 and "--instances" in r.stdout
    assert Path(__file__).exists()


@pytest.mark.slow
def test_oracle_command_with_a_tiny_real_model(calc_suite, tmp_path):
    """`swesrl oracle` end to end with a real (tiny, untrained) transformers model: its answer holds no
    edit, so the prediction is an empty patch that `swesrl eval` reports as such."""
    from swesrl.training.tiny import build_tiny_model

    path, insts = calc_suite
    texts = [insts["demo__calc-1"]["problem_statement"], insts["demo__calc-1"]["patch"]] * 10
    model_dir = build_tiny_model(tmp_path / "tiny", texts=texts, vocab_size=300, hidden_size=32, num_layers=1)
    out = tmp_path / "oracle"
    r = swesrl("oracle", "-i", str(path), "--model", f"hf:{model_dir}", "-o", str(out),
               "--ids", "demo__calc-1", "--max-new-tokens", "8")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert rows == [
        {"instance_id": "demo__calc-1", "model_name_or_path": f"hf:{model_dir}", "model_patch": ""}
    ]
    raw = json.loads((out / "outputs.jsonl").read_text())
    assert raw["files"] == ["calc/ops.py"] and raw["problems"]
    preds, problems = load_predictions(out / "predictions.jsonl")
    s = evaluate(list(insts.values()), preds, tmp_path / "runs", "oracle", mirror=path.parent / "repos")
    assert s["empty_patch_ids"] == ["demo__calc-1"] and s["incomplete_ids"] == sorted(
        set(insts) - {"demo__calc-1"}
    )


def _remove_sandbox_leftovers(pid: int) -> None:
    """The folder and cgroups of a local sandbox abandoned by process `pid` (what `swesrl sandbox gc`
    removes), so the test leaves nothing behind."""
    import shutil
    import tempfile

    from swesrl.envs.local import Cgroup

    for d in Path(tempfile.gettempdir()).glob(f"swesrl-local-{pid}-*"):
        shutil.rmtree(d, ignore_errors=True)
    cg = Path("/sys/fs/cgroup")
    for ctrl, own in Cgroup._own_paths().items():
        for d in (cg / (ctrl if ctrl and (cg / ctrl).is_dir() else "") / own.lstrip("/")).glob(
            f"swesrl-{pid}-*"
        ):
            try:
                d.rmdir()
            except OSError:
                pass


def test_ctrl_c_stops_promptly_and_the_rerun_resumes(calc_suite, calc_mirror, tmp_path):
    """SIGINT (Ctrl-C: the whole foreground process group) while an instance's tests hang: pending
    instances are cancelled, the running one is abandoned, the summary of what is on disk is written,
    one line says how far it got, exit status 130; the same command then resumes."""
    path, insts = calc_suite
    ids = ["demo__calc-1", "demo__calc-hang", "demo__calc-2"]  # --workers 1 grades them in this order
    pf = tmp_path / "preds.jsonl"
    pf.write_text(
        "".join(
            json.dumps({"instance_id": i, "model_name_or_path": "m", "model_patch": insts[i]["patch"]}) + "\n"
            for i in ids
        )
    )
    out = tmp_path / "runs"
    args = ["eval", "-i", str(path), "-p", str(pf), "-o", str(out), "--run-id", "r", "--workers", "1",
            "--repo-mirror", str(calc_mirror), "--ids", ",".join(ids)]  # fmt: skip
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "swesrl", *args, "--timeout", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        # as in a terminal: a suite launched in the background (`cmd &` in a script) has SIGINT
        # ignored, which children inherit and Python keeps (so Ctrl-C would rightly do nothing)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    first = out / "r" / "demo__calc-1" / "report.json"
    try:
        deadline = time.monotonic() + 120
        while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.exists() and proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.5)  # the hanging instance is running now
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("swesrl eval did not stop within 15 s of Ctrl-C")
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _remove_sandbox_leftovers(proc.pid)
    assert proc.returncode == 130, stderr
    assert took < 10, took
    assert "Traceback" not in stderr
    lines = [x for x in stderr.splitlines() if "interrupted" in x]
    assert lines == ["interrupted: 1 of 3 graded; rerun the same command to resume"], stderr
    summary = json.loads((out / "r" / "summary.json").read_text())
    assert summary["completed_ids"] == ["demo__calc-1"] and summary["resolved_ids"] == ["demo__calc-1"]
    assert summary["incomplete_ids"] == ["demo__calc-2", "demo__calc-hang"]
    assert not (out / "r" / "demo__calc-2" / "report.json").exists()  # cancelled, never started
    # abandoned mid-test, its sandbox closed at exit: no report (an error report would skip it on resume)
    assert not (out / "r" / "demo__calc-hang" / "report.json").exists()

    before = first.stat().st_mtime_ns
    r = swesrl(*args, "--timeout", "5", env=env, timeout=300)  # a short timeout ends the hanging tests
    assert r.returncode == 0, r.stderr
    assert "resuming r: 1 instance(s) already evaluated, 2 to go" in " ".join(r.stderr.split())
    assert first.stat().st_mtime_ns == before
    summary = json.loads((out / "r" / "summary.json").read_text())
    assert summary["resolved_ids"] == ["demo__calc-1", "demo__calc-2"]
    assert summary["timeout_ids"] == ["demo__calc-hang"] and summary["incomplete_ids"] == []


def _latin1_line(row: dict) -> bytes:
    return (json.dumps(row, ensure_ascii=False) + "\n").encode("latin-1")


@pytest.mark.parametrize("which", ["instances.jsonl", "instances.json", "preds.jsonl", "preds.json", "utf16"])
def test_non_utf8_input_is_one_line(calc_suite, calc_mirror, tmp_path, which):
    """A file in another encoding stops `swesrl eval` with one line naming the file, the byte and
    its offset, exit status 2 and no traceback."""
    path, insts = calc_suite
    one = insts["demo__calc-1"]
    good = json.dumps(one) + "\n"
    bad_inst = good.encode() + _latin1_line(
        {**one, "instance_id": "demo__calc-x", "problem_statement": "café"}
    )
    pred = {"instance_id": "demo__calc-1", "model_patch": one["patch"]}
    bad_pred = _latin1_line({"instance_id": "demo__calc-1", "model_patch": one["patch"] + "# résumé\n"})
    ipath, ppath = tmp_path / "instances.jsonl", tmp_path / "preds.jsonl"
    ipath.write_text(good)
    ppath.write_text(json.dumps(pred) + "\n")
    if which == "instances.jsonl":
        ipath.write_bytes(bad_inst)
        bad, offset = ipath, bad_inst.index(b"\xe9")
    elif which == "instances.json":
        ipath = tmp_path / "instances.json"
        data = (
            "["
            + good
            + ","
            + json.dumps({**one, "instance_id": "b", "problem_statement": "ça"}, ensure_ascii=False)
            + "]"
        ).encode("latin-1")
        ipath.write_bytes(data)
        bad, offset = ipath, data.index(b"\xe7")
    elif which == "preds.jsonl":
        data = (json.dumps(pred) + "\n").encode() + bad_pred
        ppath.write_bytes(data)
        bad, offset = ppath, data.index(b"\xe9")
    elif which == "preds.json":
        ppath = tmp_path / "preds.json"
        ppath.write_bytes(b"[" + bad_pred + b"]")
        bad, offset = ppath, 1 + bad_pred.index(b"\xe9")
    else:  # what Windows tools write as "Unicode"
        ppath.write_bytes((json.dumps(pred) + "\n").encode("utf-16"))
        bad, offset = ppath, 0
    r = swesrl("eval", "-i", str(ipath), "-p", str(ppath), "-o", str(tmp_path / "o"), "--repo-mirror",
               str(calc_mirror), env={**os.environ, "NO_COLOR": "1", "COLUMNS": "400"})  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: {bad}: not UTF-8 text (byte 0x"), lines[0]
    assert f" at offset {offset}" in lines[0], lines[0]
    if which == "utf16":
        assert "UTF-16" in lines[0]


def test_prediction_lines_split_only_at_newlines(calc_suite, tmp_path):
    """JSONL is split at "\\n" only: a patch holding U+2028 or U+0085 (written raw by
    `json.dumps(..., ensure_ascii=False)`) is one prediction, not two broken lines."""
    path, insts = calc_suite
    pf = tmp_path / "preds.jsonl"
    rows = [{"instance_id": "demo__calc-1", "model_patch": "+x = 'a\u2028b\x85c'\n"}]
    pf.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert load_predictions(pf) == (rows, [])
    from swesrl.core.instances import read_instances

    f = tmp_path / "instances.jsonl"
    bad = {**insts["demo__calc-1"], "problem_statement": "a\u2028b"}
    f.write_text(json.dumps(bad, ensure_ascii=False) + "\n{oops\n", encoding="utf-8")
    got, problems = read_instances(f, lenient=True)
    assert [i["problem_statement"] for i in got] == ["a\u2028b"]
    assert problems == [f"{f}:2: not valid JSON (Expecting property name enclosed in double quotes); skipped"]
