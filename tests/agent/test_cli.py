"""`swesrl run` and `swesrl step` as a user runs them: subprocesses and a pseudo-terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pexpect
import pytest

from tests.servers import free_port

ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160", "TERM": "dumb"}


def swesrl(*args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "swesrl", *args],
        capture_output=True,
        text=True,
        env=ENV,
        input=input,
        timeout=timeout,
    )


def test_run_batch_survives_a_crash_and_resumes(suite, tmp_path):
    out = tmp_path / "run"
    args = [
        "run",
        "-i",
        str(suite["instances_path"]),
        "-m",
        f"replay:{suite['experts']}",
        "-o",
        str(out),
        "-w",
        "2",
    ]
    r = swesrl(*args)
    assert r.returncode == 0, r.stderr
    trajs = {
        i["instance_id"]: json.loads((out / i["instance_id"] / "traj.json").read_text())
        for i in suite["instances"]
    }
    assert trajs["acme__calc-1"]["info"]["exit_status"] == "submitted"
    assert trajs["acme__calc-2"]["info"]["exit_status"] == "submitted"
    crashed = trajs["acme__calc-3"]["info"]
    assert crashed["exit_status"] == "error" and "Traceback" in crashed["traceback"]
    preds = {p["instance_id"]: p for p in map(json.loads, (out / "preds.jsonl").read_text().splitlines())}
    assert set(preds) == set(trajs)
    assert preds["acme__calc-1"]["model_patch"] == suite["patch"] == preds["acme__calc-2"]["model_patch"]
    assert preds["acme__calc-3"]["model_patch"] == ""
    assert preds["acme__calc-1"]["model_name_or_path"] == f"replay:{suite['experts']}"
    assert "submitted" in r.stdout and "error" in r.stdout

    done = out / "acme__calc-1" / "traj.json"
    before = done.stat().st_mtime_ns
    r = swesrl(*args, "--limit", "2")
    assert r.returncode == 0, r.stderr
    assert done.stat().st_mtime_ns == before  # finished: skipped
    assert len((out / "preds.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda s, t: ["run", "-i", str(t / "bad.jsonl"), "-m", "replay:x", "-o", str(t)], "not valid JSON"),
        (lambda s, t: ["run", "-i", str(t / "none.jsonl"), "-m", "replay:x", "-o", str(t)], "not found"),
        (
            lambda s, t: ["run", "-i", str(s["instances_path"]), "-m", "gpt-4", "-o", str(t)],
            "unknown model spec",
        ),
        (
            lambda s, t: [
                "run",
                "-i",
                str(s["instances_path"]),
                "-m",
                f"openai:http://127.0.0.1:{free_port()}/v1#m",
                "-o",
                str(t),
            ],
            "cannot reach",
        ),
        (
            lambda s, t: [
                "run",
                "-i",
                str(s["instances_path"]),
                "-m",
                "replay:x",
                "-o",
                str(t),
                "-c",
                "step_limit=many",
            ],
            "config error",
        ),
        (
            lambda s, t: ["step", "-i", str(s["instances_path"]), "--instance", "nope", "--mode", "human"],
            "unknown instance",
        ),
        (
            lambda s, t: [
                "step",
                "-i",
                str(s["instances_path"]),
                "--instance",
                "acme__calc-1",
                "--mode",
                "auto",
            ],
            "needs --model",
        ),
    ],
)
def test_bad_input_is_one_line(suite, tmp_path, make_args, message):
    (tmp_path / "bad.jsonl").write_text('{"instance_id": "a", \n')
    r = swesrl(*make_args(suite, tmp_path))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def spawn(*args: str, env: dict | None = None) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "swesrl", *args],
        env=env or ENV,
        encoding="utf-8",
        timeout=60,
        dimensions=(50, 160),
    )


def test_step_shows_bracketed_text_verbatim(suite, tmp_path):
    """Observations are shown as they are: rich markup in them is text, not style."""
    child = spawn("step", "-i", str(suite["instances_path"]), "--instance", "acme__calc-1", "--mode", "human")
    child.expect("action>")
    child.sendline("printf '%s\\n' 'return ordered[mid]' '[bold]x[/bold] [/] [link=y]z'")
    child.expect("observation")
    child.expect("action>")
    shown = child.before
    child.sendline(":quit")
    child.expect(pexpect.EOF)
    assert "return ordered[mid]" in shown, shown
    assert "[bold]x[/bold] [/] [link=y]z" in shown, shown


def test_step_human_through_a_terminal(suite, tmp_path):
    save = tmp_path / "human.json"
    child = spawn(
        "step",
        "-i",
        str(suite["instances_path"]),
        "--instance",
        "acme__calc-1",
        "--mode",
        "human",
        "--save",
        str(save),
    )
    child.expect("action>")
    child.sendline("<think>Read it first.</think>")  # an XML reply: ends at </function>
    child.sendline("<function=bash>")
    child.sendline("<parameter=command>cat pkg/calc.py</parameter>")
    child.sendline("</function>")
    child.expect("return a-b")
    child.expect("action>")
    child.sendline("")  # a multi-line block of shell, ended by "."
    child.sendline("sed -i 's/a-b/a + b/' pkg/calc.py")
    child.sendline("echo edited")
    child.sendline(".")
    child.expect("edited")
    child.expect("action>")
    child.sendline(":submit")
    child.expect("exit status: submitted")
    child.expect(pexpect.EOF)
    traj = json.loads(save.read_text())
    assert traj["info"]["exit_status"] == "submitted"
    assert traj["info"]["submission"] == suite["patch"]
    assert traj["info"]["model"] == "human" and traj["info"]["n_steps"] == 3
    asst = [m["content"] for m in traj["messages"] if m["role"] == "assistant"]
    assert asst[0].startswith("<think>Read it first.</think>\n<function=bash>")
    assert "<parameter=command>sed -i 's/a-b/a + b/' pkg/calc.py\necho edited</parameter>" in asst[1]
    assert asst[2] == "<function=submit>\n</function>"


def test_step_confirm_accept_edit_replace(suite, tmp_path):
    save = tmp_path / "confirm.json"
    env = {**ENV, "EDITOR": "sed -i s/cat/head/", "VISUAL": ""}
    args = [
        "step",
        "-i",
        str(suite["instances_path"]),
        "--instance",
        "acme__calc-1",
        "-m",
        f"replay:{suite['experts']}",
    ]
    child = spawn(*args, "--mode", "confirm", "--save", str(save), env=env)
    child.expect("proposed action")
    child.expect(r"\[q\]uit\?")
    child.sendline("e")  # the editor turns `cat` into `head`
    child.expect("edited action")
    child.expect("return a-b")
    child.expect(r"\[q\]uit\?")
    child.sendline("r")  # instead of the expert's str_replace
    child.expect("action>")
    child.sendline("sed -i 's/a-b/a + b/' pkg/calc.py && echo replaced")
    child.expect("replaced")
    child.expect(r"\[q\]uit\?")  # the replay goes on with the expert's submit
    child.sendline("")
    child.expect("exit status: submitted")
    child.expect(pexpect.EOF)
    traj = json.loads(save.read_text())
    asst = [m["content"] for m in traj["messages"] if m["role"] == "assistant"]
    assert "head /testbed/pkg/calc.py" in asst[0]
    assert "echo replaced" in asst[1]
    assert traj["info"]["human_edits"] == [1, 2]
    assert traj["info"]["submission"] == suite["patch"]


def test_step_auto_from_stdin(suite, tmp_path):
    save = tmp_path / "auto.json"
    args = [
        "step",
        "-i",
        str(suite["instances_path"]),
        "--instance",
        "acme__calc-2",
        "-m",
        f"replay:{suite['experts']}",
    ]
    r = swesrl(*args, "--mode", "auto", "--save", str(save), input="\n\n\n")
    assert r.returncode == 0, r.stderr
    assert "exit status: submitted" in r.stdout
    traj = json.loads(save.read_text())
    assert traj["info"]["exit_status"] == "submitted" and traj["info"]["submission"] == suite["patch"]
    r = swesrl(*args, "--mode", "auto", "--save", str(save), input="\n")  # input ends: the episode stops
    assert r.returncode == 0, r.stderr
    assert json.loads(save.read_text())["info"]["exit_status"] == "stopped"


@pytest.mark.docker
def test_run_with_docker_backend(suite, tmp_path, docker_client):
    out = tmp_path / "docker"
    args = ["run", "-i", str(suite["instances_path"]), "-m", f"replay:{suite['experts']}", "-o", str(out)]
    r = swesrl(*args, "--backend", "docker", "--id", "acme__calc-1", timeout=300)
    assert r.returncode == 0, r.stderr
    traj = json.loads((out / "acme__calc-1" / "traj.json").read_text())
    assert traj["info"]["exit_status"] == "submitted"
    assert traj["info"]["submission"] == suite["patch"]


def test_run_rebuilds_predictions_from_trajectories_after_a_kill(suite, tmp_path):
    """A SIGKILL between saving an instance's traj.json and rewriting preds.jsonl leaves the
    trajectory without its prediction; the rerun skips the finished instance, so it must rebuild
    preds.jsonl from the trajectories on disk rather than trust the file."""
    import shutil

    pristine = tmp_path / "pristine"
    base = ["run", "-i", str(suite["instances_path"]), "-m", f"replay:{suite['experts']}"]
    r = swesrl(*base, "-o", str(pristine))
    assert r.returncode == 0, r.stderr
    want = {p["instance_id"]: p for p in map(json.loads, (pristine / "preds.jsonl").read_text().splitlines())}
    assert set(want) == {"acme__calc-1", "acme__calc-2", "acme__calc-3"}
    rows = [json.dumps(want[i]) + "\n" for i in sorted(want)]
    killed_states = {
        "missing": None,
        "stale": rows[1] + json.dumps({**want["acme__calc-1"], "model_patch": "old"}) + "\n",
        "truncated": rows[0] + rows[1][: len(rows[1]) // 2],  # cut mid-line
        "empty": "",
    }
    for state, text in killed_states.items():
        out = tmp_path / state
        shutil.copytree(pristine, out)
        preds = out / "preds.jsonl"
        if text is None:
            preds.unlink()
        else:
            preds.write_text(text)
        finished = {i: (out / i / "traj.json").stat().st_mtime_ns for i in ("acme__calc-1", "acme__calc-2")}
        # the same command, and one that selects only some instances: both restore every prediction
        for extra in ([], ["--id", "acme__calc-1"]):
            r = swesrl(*base, "-o", str(out), *extra)
            assert r.returncode == 0, (state, r.stderr)
            got = [json.loads(x) for x in preds.read_text().splitlines()]
            assert {p["instance_id"]: p for p in got} == want, state
            assert len(got) == 3, state
            for iid, mtime in finished.items():  # nothing finished ran again
                assert (out / iid / "traj.json").stat().st_mtime_ns == mtime, (state, iid)
        assert not list(out.glob(".preds.jsonl.*")), state  # no temp files left


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_run_with_a_non_utf8_instances_file_is_one_line(suite, tmp_path, suffix):
    inst = {**suite["instances"][0], "problem_statement": "add() ne marche pas, café"}
    text = json.dumps(inst, ensure_ascii=False) + "\n"
    data = (text if suffix == ".jsonl" else f"[{text}]").encode("latin-1")
    f = tmp_path / f"latin1{suffix}"
    f.write_bytes(data)
    r = swesrl("run", "-i", str(f), "-m", f"replay:{suite['experts']}", "-o", str(tmp_path / "o"))
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    at = data.index(b"\xe9")
    assert lines == [f"error: {f}: not UTF-8 text (byte 0xe9 at offset {at}, line 1)"], r.stderr
