"""Trajectory readers against real public files and hand-written files in upstream formats.

Expected values are literals read off the files by hand (counts, specific steps), plus an
independent per-step oracle that walks the raw JSON with the json module only.
"""

from __future__ import annotations

import json
from pathlib import Path

from swesrl.training.data import Dropped, detect_format, iter_trajectories, read_trajectories

REAL = Path(__file__).resolve().parents[1] / "data" / "real"  # copies of ../shared/data/real
FIX = Path(__file__).resolve().parents[1] / "training" / "data_fixtures"
SUBMIT = "<function=submit>\n</function>"


def bash(cmd: str) -> str:
    return f"<function=bash>\n<parameter=command>{cmd}</parameter>\n</function>"


def test_every_real_file_is_read_without_drops():
    items = list(iter_trajectories([REAL]))
    assert [i for i in items if isinstance(i, Dropped)] == []
    assert sorted((t["source_format"], t["instance_id"], len(t["steps"])) for t in items) == [
        ("minisweagent", "minisweagent_local", 2),
        ("sweagent", "marshmallow-code__marshmallow-1867", 11),
        ("swesmith", "getmoto__moto.694ce1f4.pr_7331", 44),
        ("swesmith", "pandas-dev__pandas.95280573.pr_53652", 37),
        ("swesmith", "pydantic__pydantic.acb0f10f.pr_8316", 22),
    ]


def test_swesmith_steps_match_the_source():
    trajs = read_trajectories(REAL / "swesmith_ft_xml_example.jsonl")
    pandas, moto, pydantic = trajs
    assert pandas["task"].startswith(
        "BUG: [pyarrow] AttributeError: 'Index' object has no attribute 'freq'\n"
    )
    assert pandas["resolved"] is None
    s = pandas["steps"][3]
    assert s.thought == "Let's find the DatetimeIndex class:"
    assert s.action == bash(
        'find /testbed/pandas -type f -name "*.py" | xargs grep -l "class DatetimeIndex" | head -5'
    )
    assert s.raw_action == s.action
    assert s.observation == (
        "/testbed/pandas/core/indexes/datetimes.py\r\n/testbed/pandas/core/indexes/datetimelike.py\r\n"
        "/testbed/pandas/core/resample.py"
    )
    s = pandas["steps"][1]
    assert s.action == (
        "<function=str_replace_editor>\n<parameter=command>view</parameter>\n"
        "<parameter=path>/testbed/pandas/core/indexes/base.py</parameter>\n"
        "<parameter=view_range>[6035, 6050]</parameter>\n</function>"
    )
    assert (
        pandas["steps"][35].observation == ""
    )  # "Your command ran successfully and did not produce any output."
    assert pandas["steps"][36] == ("Now let's submit our changes again:", SUBMIT, SUBMIT, "")
    # moto's first observation uses "Observation: " instead of "OBSERVATION:\n"
    assert moto["steps"][0].observation.startswith("/testbed/docs/conf.py\r\n/testbed/moto/__init__.py\r\n")
    assert moto["steps"][7].observation == (
        'Traceback (most recent call last):\r\n  File "/testbed/reproduce_error.py", line 3, in <module>\r\n'
        "    from moto import mock_cognitoidentity\r\nImportError: cannot import name 'mock_cognitoidentity' "
        "from 'moto' (/testbed/moto/__init__.py)"
    )
    assert moto["steps"][43] == ("", SUBMIT, SUBMIT, "")
    assert pydantic["steps"][4].action == bash("cd /testbed && pip install -e .")
    assert pydantic["steps"][4].thought == "It seems we need to install the dependencies first:"


def test_swesmith_every_step_against_the_raw_messages():
    for line, traj in zip(
        (REAL / "swesmith_ft_xml_example.jsonl").read_text().splitlines(),
        read_trajectories(REAL / "swesmith_ft_xml_example.jsonl"),
        strict=True,
    ):
        msgs = json.loads(line)["messages"][2:]
        assistants, users = msgs[0::2], msgs[1::2]
        assert len(traj["steps"]) == len(assistants)
        for k, step in enumerate(traj["steps"]):
            content = assistants[k]["content"]
            assert traj["responses"][k] == content
            start = content.index("<function=")
            assert step.raw_action == content[start : content.index("</function>") + len("</function>")]
            assert step.thought == content[:start].strip()
            expected = users[k]["content"] if k < len(users) else ""
            if expected == "Your command ran successfully and did not produce any output.":
                expected = ""
            for prefix in ("OBSERVATION:\n", "Observation: "):
                if expected.startswith(prefix):
                    expected = expected[len(prefix) :]
                    break
            assert step.observation == expected


def test_sweagent_xml_traj_matches_the_source():
    (t,) = read_trajectories(REAL / "sweagent_xml_marshmallow-1867.traj")
    assert t["instance_id"] == "marshmallow-code__marshmallow-1867"
    assert t["task"].startswith("TimeDelta serialization precision\nHi there!\n")
    assert t["info"]["exit_status"] == "submitted"
    raw = [s.raw_action for s in t["steps"]]
    assert raw[0] == "create reproduce.py"
    assert raw[2] == raw[8] == "python reproduce.py"
    assert raw[3:6] == ["ls -F", 'find_file "fields.py" src', "open src/marshmallow/fields.py 1474"]
    assert raw[7] == (
        "edit 1475:1475\n        return int(round(value.total_seconds() / base_unit.total_seconds()))"
        "  # round to nearest int\nend_of_edit"
    )
    assert raw[9:] == ["rm reproduce.py", "submit"]
    assert t["steps"][0].action == bash("create reproduce.py")
    assert t["steps"][10].action == SUBMIT
    obs = [s.observation for s in t["steps"]]
    assert obs[0] == "[File: /marshmallow-code__marshmallow/reproduce.py (1 lines total)]\n1:\n"
    assert obs[2] == "344\n" and obs[8] == "345\n" and obs[9] == ""
    assert [len(o) for o in obs] == [71, 463, 4, 229, 128, 4117, 1873, 3967, 4, 0, 564]
    assert obs[10].startswith("\ndiff --git a/src/marshmallow/fields.py b/src/marshmallow/fields.py\n")
    assert t["steps"][9].thought == (
        "The output has changed from 344 to 345, which suggests that the rounding issue has been fixed. "
        "Let's remove the reproduce.py file since it is no longer needed."
    )


def test_minisweagent_list_form():
    (t,) = read_trajectories(REAL / "minisweagent_local.traj.json")
    assert t["source_format"] == "minisweagent"
    assert t["task"] == "Blah blah blah"
    assert t["steps"][0] == (
        "Here be some dummy command:",
        bash("echo 'hello world'"),
        "echo 'hello world'",
        "hello world\n",
    )
    # the submit sentinel is the submit action; the raw command is kept
    assert t["steps"][1] == (
        "OK, now let me end this run.",
        SUBMIT,
        "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT",
        "",
    )


def test_sweagent_function_calling_variant_uses_tool_calls():
    (t,) = read_trajectories(FIX / "sweagent_fc.traj")
    assert (t["source_format"], t["instance_id"], t["task"]) == (
        "sweagent",
        "demo__slicer-1",
        "head() drops the first item",
    )
    assert t["system"] == "You are a helpful assistant that can interact with a computer to solve tasks."
    a, b, c = t["steps"]
    assert a.action == bash('find /testbed -name "*.py" | grep slicer')
    assert a.raw_action == '{"command": "find /testbed -name \\"*.py\\" | grep slicer"}'
    assert a.observation == "/testbed/src/slicer.py\n/testbed/tests/test_slicer.py\n"
    assert b.action == (
        "<function=str_replace_editor>\n<parameter=command>str_replace</parameter>\n"
        "<parameter=path>/testbed/src/slicer.py</parameter>\n<parameter=old_str>    return items[1:]</parameter>\n"
        "<parameter=new_str>    return items[:]</parameter>\n</function>"
    )
    assert b.thought == "The slice drops the first element; keep it."
    assert (c.action, c.raw_action) == (SUBMIT, "{}")


def test_sweagent_thought_action_variant():
    (t,) = read_trajectories(FIX / "sweagent_thought_action.traj")
    assert t["task"] == "head() drops the first item"  # from the (non-demo) task message
    assert [s.thought for s in t["steps"]] == [
        "First let's look at the files in the repository.",
        "The slice is wrong.",
        "Done.",
    ]
    assert [s.action for s in t["steps"]] == [
        bash("ls -F"),
        bash("edit 4:4\n    return items[:]\nend_of_edit"),
        SUBMIT,
    ]
    assert t["steps"][1].raw_action == "edit 4:4\n    return items[:]\nend_of_edit\n"
    assert t["steps"][0].observation == "README.md\nsrc/\ntests/\n"


def test_minisweagent_v1_dict_and_v2_toolcalls():
    (v1,) = read_trajectories(FIX / "minisweagent_v1.traj.json")
    assert (v1["source_format"], v1["instance_id"]) == ("minisweagent", "demo__slicer-1")
    assert v1["steps"][0] == (
        "Let me look at the module first.",
        bash("cat src/slicer.py"),
        "cat src/slicer.py",
        "def head(items):\n    return items[1:]\n",
    )
    assert v1["steps"][1].action == bash("sed -i 's/items\\[1:\\]/items[:]/' src/slicer.py")
    assert v1["steps"][1].observation == ""
    assert v1["steps"][2].action == SUBMIT
    assert v1["steps"][2].raw_action == "echo MINI_SWE_AGENT_FINAL_OUTPUT && git add -A && git diff --cached"
    (v2,) = read_trajectories(FIX / "minisweagent_v2_toolcall.traj.json")
    assert v2["task"] == "head() drops the first item"
    assert v2["steps"][0] == (
        "Let me read the module.",
        bash("cat src/slicer.py"),
        '{"command": "cat src/slicer.py"}',
        "def head(items):\n    return items[1:]\n",
    )
    assert v2["steps"][1].action == SUBMIT


def test_openai_tool_calling_openhands_and_nebius_style():
    a, b = read_trajectories(FIX / "openhands_swegym.jsonl")
    assert (a["source_format"], a["resolved"], b["resolved"]) == ("openai", True, False)
    assert a["task"] == "head() drops the first item"
    assert a["system"].startswith("You are OpenHands agent")
    view, test, finish = a["steps"]
    assert view.action == (
        "<function=str_replace_editor>\n<parameter=command>view</parameter>\n"
        "<parameter=path>/workspace/demo__slicer/src/slicer.py</parameter>\n"
        "<parameter=view_range>[1, 2]</parameter>\n</function>"
    )
    assert view.thought == "I'll view the module."
    assert view.observation.endswith("     2\t    return items[1:]\n")
    assert test.action == bash("cd /workspace/demo__slicer && python -m pytest -q")  # is_input dropped
    assert test.observation == "1 failed in 0.01s\n[The command completed with exit code 1.]"
    assert (finish.action, finish.raw_action) == (SUBMIT, '{"message": "done", "task_completed": "true"}')
    assert b["task"] == "tail() drops the last item"
    assert b["steps"] == [
        (
            "Look first.",
            bash("grep -n tail src/slicer.py"),
            '{"command": "grep -n tail src/slicer.py"}',
            "5:def tail(items):",
        )
    ]


def test_openhands_xml_calls_with_other_tool_names():
    (t,) = read_trajectories(FIX / "openhands_xml.jsonl")
    assert (t["resolved"], t["task"]) == (True, "head() drops the first item")
    run, fix, finish = t["steps"]
    assert run.action == bash("cd /workspace/demo__slicer__1.0 && python -m pytest -q")
    assert run.raw_action == (
        "<function=execute_bash>\n<parameter=command>\ncd /workspace/demo__slicer__1.0 && python -m pytest -q\n"
        "</parameter>\n</function>"
    )
    assert run.observation.startswith("1 failed in 0.01s\n[Python Interpreter: /usr/bin/python]\n")
    assert fix.observation == "The file /workspace/demo__slicer__1.0/slicer.py has been edited."
    assert (finish.action, finish.raw_action) == (SUBMIT, "<function=finish>\n</function>")
    # our own calls are replayed verbatim; renamed ones are rewritten in our format
    assert t["responses"][0] is None and t["responses"][1].startswith(
        "Now fix it.\n<function=str_replace_editor>"
    )


def test_detect_format():
    assert detect_format([{"role": "system", "content": ""}]) == "minisweagent"
    assert detect_format({"messages": [{"role": "user", "content": "x"}], "instance_id": "a"}) == "swesmith"
    assert detect_format({"messages": [{"role": "user", "content": "x"}], "info": {}}) == "swesrl"
    assert detect_format({"trajectory": [{"action": "ls", "observation": ""}], "history": []}) == "sweagent"
    assert detect_format({"foo": 1}) is None
    assert detect_format(3) is None


def test_bad_inputs_are_counted_with_reasons(tmp_path):
    good = json.dumps(
        {
            "instance_id": "ok",
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "t"},
                {
                    "role": "assistant",
                    "content": "<function=bash>\n<parameter=command>ls</parameter>\n</function>",
                },
                {"role": "user", "content": "OBSERVATION:\na"},
            ],
        }
    )
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(
        good
        + "\n"
        + good[: len(good) // 2]
        + "\n"
        + json.dumps({"what": "ever"})
        + "\n"
        + json.dumps(
            {
                "instance_id": "noact",
                "messages": [
                    {"role": "user", "content": "t"},
                    {"role": "assistant", "content": "I give up."},
                ],
            }
        )
        + "\n"
    )
    (tmp_path / "empty.json").write_text("")
    early = {"trajectory": [], "history": [], "info": {"exit_status": "exit_cost"}}
    (tmp_path / "early.traj").write_text(json.dumps(early))
    (tmp_path / "broken.traj").write_text('{"trajectory": [')
    items = list(
        iter_trajectories(
            [
                mixed,
                tmp_path / "empty.json",
                tmp_path / "early.traj",
                tmp_path / "broken.traj",
                tmp_path / "missing.jsonl",
            ]
        )
    )
    got = [(i.reason, i.source) if isinstance(i, Dropped) else i["instance_id"] for i in items]
    assert got == [
        "ok",
        ("bad_json", f"{mixed}:2"),
        ("unknown_format", f"{mixed}:3"),
        ("no_actions", f"{mixed}:4"),
        ("empty_file", str(tmp_path / "empty.json")),
        ("no_actions", str(tmp_path / "early.traj")),
        ("bad_json", str(tmp_path / "broken.traj")),
        ("missing_file", str(tmp_path / "missing.jsonl")),
    ]
