"""Step instances: prompts equal what the real agent loop sends; token budgets; the build command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swesrl.agent.context import ContextPolicy
from swesrl.agent.loop import initial_messages, load_agent_config, run_agent
from swesrl.agent.models import get_model
from swesrl.envs import env_for_instance
from swesrl.envs.local import bwrap_available
from swesrl.training.data import BuildOptions, build_dataset, build_step_instances, read_trajectories
from swesrl.training.data.steps import TRUNCATION_NOTE, TokenBudget, agent_messages

REAL = Path(__file__).resolve().parents[1] / "data" / "real"  # copies of ../shared/data/real
FIX = Path(__file__).parent / "data_fixtures"
SUBMIT = "<function=submit>\n</function>"


def git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> tuple[dict, Path]:
    """A one-task suite: a bare repo with an off-by-one bug and its instance."""
    tmp = tmp_path_factory.mktemp("suite")
    src = tmp / "src"
    (src / "slicer").mkdir(parents=True)
    (src / "slicer/__init__.py").write_text("def head(items):\n    return items[1:]\n")
    (src / "tests").mkdir()
    (src / "tests/test_slicer.py").write_text(
        "from slicer import head\n\n\ndef test_head():\n    assert head([1, 2]) == [1, 2]\n"
    )
    git("init", "-q", cwd=src)
    git("add", "-A", cwd=src)
    git("commit", "-qm", "init", cwd=src)
    base = git("rev-parse", "HEAD", cwd=src)
    git("clone", "-q", "--bare", str(src), str(tmp / "repos/demo__slicer.git"), cwd=tmp)
    inst = {
        "instance_id": "demo__slicer-1",
        "repo": "demo/slicer",
        "base_commit": base,
        "problem_statement": "head() drops the first item",
        "FAIL_TO_PASS": ["tests/test_slicer.py::test_head"],
        "PASS_TO_PASS": [],
        "test_cmd": "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -m pytest -rA -p no:cacheprovider tests/test_slicer.py",
    }
    return inst, tmp / "repos"


EXPERT = [
    "<think>\nLook at the package.\n</think>\n<function=bash>\n<parameter=command>cat slicer/__init__.py</parameter>\n</function>",
    "Fix the slice.\n<function=str_replace_editor>\n<parameter=command>str_replace</parameter>\n"
    "<parameter=path>/testbed/slicer/__init__.py</parameter>\n<parameter=old_str>items[1:]</parameter>\n"
    "<parameter=new_str>items[:]</parameter>\n</function>",
    "I am done <function=oops>",  # a format error: context only, no instance
    "<function=bash>\n<parameter=command>true</parameter>\n</function>",
    "<think>run the tests</think>\n<function=bash>\n<parameter=command>python3 -m pytest -q tests 2>&1 | tail -1</parameter>\n</function>",
    "<think>\nDone.\n</think>\n<function=submit>\n</function>",
]


class Recorder:
    """Keeps a copy of every prompt the agent loop sends, then lets the replay model answer."""

    def __init__(self, model):
        self.model, self.name, self.prompts = model, "recorder", []

    def generate(self, messages, n=1, **kw):
        self.prompts.append(json.loads(json.dumps(messages)))
        return self.model.generate(messages, n, **kw)


@pytest.mark.skipif(not bwrap_available(), reason="bubblewrap cannot create a sandbox here")
@pytest.mark.parametrize("kind", ["srl", "full"])
def test_round_trip_prompts_equal_what_the_agent_loop_sent(suite, tmp_path, kind):
    inst, mirror = suite
    expert = tmp_path / "expert.json"
    config = load_agent_config([f"context.kind={kind}"])
    recorded = [*initial_messages(config, inst), *({"role": "assistant", "content": t} for t in EXPERT)]
    expert.write_text(json.dumps({"instance_id": inst["instance_id"], "messages": recorded}))
    rec = Recorder(get_model(f"replay:{expert}"))
    with env_for_instance(inst, config.sandbox, mirror) as env:
        traj = run_agent(inst, rec, env, config, traj_path=tmp_path / "run.json")
    assert traj["info"]["exit_status"] == "submitted" and "+    return items[:]" in traj["info"]["submission"]
    assert len(rec.prompts) == 6

    (read,) = read_trajectories(tmp_path / "run.json")
    assert read["source_format"] == "swesrl"
    assert [s.action is None for s in read["steps"]] == [False, False, True, False, False, False]
    rows, dropped = build_step_instances(read, config.context, config=config, instance=inst)
    assert [r["step"] for r in rows] == [0, 1, 3, 4, 5]
    assert [d.reason for d in dropped] == ["no_action"]
    for row in rows:
        assert row["prompt"] == rec.prompts[row["step"]], f"step {row['step']}"
        assert row["n_steps"] == 6
    assert rows[1]["expert_thought"] == "Fix the slice."
    assert rows[-1]["expert_action"] == SUBMIT
    assert rows[3]["expert_action"] == (
        "<function=bash>\n<parameter=command>python3 -m pytest -q tests 2>&1 | tail -1</parameter>\n</function>"
    )
    # without the real instance the task is rebuilt from the trajectory's problem statement: same prompt
    rows2, _ = build_step_instances(read, config.context, config=config)
    assert [r["prompt"] for r in rows2] == [r["prompt"] for r in rows]


def test_prompts_of_a_foreign_format_use_the_agent_templates():
    (t,) = read_trajectories(FIX / "minisweagent_v1.traj.json")
    config = load_agent_config()
    rows, _ = build_step_instances(t, ContextPolicy(k=1), config=config)
    head = initial_messages(config, {"problem_statement": t["task"], "instance_id": t["instance_id"]})
    assert rows[0]["prompt"] == head
    assert rows[2]["prompt"][0] == head[0]
    assert rows[2]["prompt"][1]["content"] == head[1]["content"] + "\n\n(1 earlier steps omitted)"
    assert rows[2]["prompt"][2:] == [
        {
            "role": "assistant",
            "content": "<function=bash>\n<parameter=command>sed -i 's/items\\[1:\\]/items[:]/' src/slicer.py</parameter>\n</function>",
        },
        {"role": "user", "content": "Your command ran successfully and did not produce any output."},
    ]
    full, _ = build_step_instances(t, ContextPolicy(kind="full"), config=config)
    assert full[1]["prompt"][2:] == [
        {
            "role": "assistant",
            "content": "<think>\nLet me look at the module first.\n</think>\n<function=bash>\n<parameter=command>cat src/slicer.py</parameter>\n</function>",
        },
        {"role": "user", "content": "OBSERVATION:\ndef head(items):\n    return items[1:]\n"},
    ]
    assert [r["expert_action"] for r in rows][-1] == SUBMIT
    skipped, dropped = build_step_instances(t, ContextPolicy(), config=config, skip_submit=True, max_steps=1)
    assert [r["step"] for r in skipped] == [0]
    assert sorted(d.reason for d in dropped) == ["over_max_steps", "over_max_steps"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    """The project's tiny byte-level BPE tokenizer (trained on the package sources), saved to a folder."""
    from swesrl.training.tiny import default_corpus, train_tokenizer

    path = tmp_path_factory.mktemp("tok")
    train_tokenizer(default_corpus()).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


def test_token_budget_keeps_head_and_tail(tokenizer):
    budget = TokenBudget(tokenizer)
    text = "HEAD " + " ".join(f"word{i}" for i in range(400)) + " TAIL"
    clipped = budget.clip(text, 60)
    assert clipped.startswith("HEAD word0 word1") and clipped.endswith("word399 TAIL")
    assert "tokens omitted ..." in clipped
    assert budget.count(clipped) <= 60
    assert budget.clip("short text", 60) == "short text"


def test_clipped_text_never_exceeds_the_budget(tokenizer):
    """Head, note and tail can tokenize into more tokens once joined (merges across the seams)."""
    budget = TokenBudget(tokenizer)
    t = read_trajectories(REAL / "swesmith_ft_xml_example.jsonl")[0]
    texts = [s.observation for s in t["steps"] if budget.count(s.observation) > 120]
    assert texts
    for text in texts:
        for limit in range(20, 121, 7):
            assert budget.count(budget.clip(text, limit)) <= limit, limit


def test_max_prompt_tokens_with_a_real_tokenizer(tokenizer):
    t = read_trajectories(REAL / "swesmith_ft_xml_example.jsonl")[0]
    config = load_agent_config()
    budget = TokenBudget(tokenizer)
    base_rows, _ = build_step_instances(t, ContextPolicy(), config=config)
    sizes = [budget.count_messages(r["prompt"]) for r in base_rows]
    # what clipping cannot shrink: system, task, assistant turns (observations are every user turn after the task)
    fixed = max(
        n - sum(budget.count(m["content"]) for m in r["prompt"][3::2])
        for r, n in zip(base_rows, sizes, strict=True)
    )
    limit = fixed + 200
    assert max(sizes) > limit
    rows, dropped = build_step_instances(t, ContextPolicy(), None, tokenizer, limit, config=config)
    assert len(rows) == len(base_rows) and not dropped
    assert all(budget.count_messages(r["prompt"]) <= limit for r in rows)
    clipped = [r for r, n in zip(rows, sizes, strict=True) if n > limit]
    assert clipped and all(
        TRUNCATION_NOTE.split("{")[0] in "".join(m["content"] for m in r["prompt"]) for r in clipped
    )
    _, too_small = build_step_instances(t, ContextPolicy(), None, tokenizer, fixed - 10, config=config)
    assert too_small and {d.reason for d in too_small} == {"prompt_too_long"}
    msgs = agent_messages(t, config, budget=budget, max_observation_tokens=50)
    assert all(budget.count(m["content"]) <= 50 for m in msgs[3::2])


def test_build_writes_datasets_loadable_files(tmp_path):
    import datasets

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [\n{"neither": "format"}\n')
    inputs = [FIX, bad, FIX / "openhands_swegym.jsonl"]  # the second openhands file is a duplicate
    stats = build_dataset(inputs, tmp_path / "out", BuildOptions(only_resolved=False))
    assert stats["trajectories_read"] == 9
    assert stats["dropped"]["counts"] == {"bad_json": 1, "unknown_format": 1, "duplicate_trajectory": 2}
    assert stats["formats"] == {"minisweagent": 2, "openai": 4, "sweagent": 2, "swesmith": 1}
    assert stats["instances"] == 3 + 2 + 3 + 1 + 3 + 3 + 3
    assert stats["steps_per_trajectory"]["max"] == 3.0
    srl = datasets.load_dataset("json", data_files=str(tmp_path / "out/srl.jsonl"), split="train")
    assert len(srl) == stats["instances"]
    assert set(srl.column_names) == {
        "instance_id",
        "step",
        "n_steps",
        "prompt",
        "expert_action",
        "expert_thought",
    }
    assert srl[0]["prompt"][0]["role"] == "system"
    sft = datasets.load_dataset("json", data_files=str(tmp_path / "out/sft.jsonl"), split="train")
    assert len(sft) == 7
    first = sft[0]["messages"]
    assert [m["role"] for m in first[:3]] == ["system", "user", "assistant"] and first[-1][
        "role"
    ] == "assistant"
    assert first[2]["content"].startswith("<think>\n") and "</think>\n<function=" in first[2]["content"]
    par = build_dataset(inputs, tmp_path / "par", BuildOptions(), workers=2)
    for name in ("srl.jsonl", "sft.jsonl"):
        assert (tmp_path / "par" / name).read_bytes() == (tmp_path / "out" / name).read_bytes()
    assert par["dropped"] == stats["dropped"] and par["prompt_length"] == stats["prompt_length"]
    only = build_dataset([FIX], tmp_path / "only", BuildOptions(only_resolved=True))
    assert only["trajectories_used"] == 2 and only["instances"] == 6
    assert only["dropped"]["counts"]["resolution_unknown"] == 4
    assert only["dropped"]["counts"]["not_resolved"] == 1


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "swesrl", "data", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_build_exit_codes(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "trunc.jsonl").write_text('{"instance_id": "x", "messages": [{"role": "us')
    r = run_cli(
        "build",
        "--trajectories",
        str(tmp_path / "empty.jsonl"),
        str(tmp_path / "trunc.jsonl"),
        "--out",
        str(tmp_path / "none"),
    )
    assert r.returncode == 2, r.stderr
    assert "nothing usable was read from 2 file(s)" in r.stderr
    stats = json.loads((tmp_path / "none/stats.json").read_text())
    assert stats["dropped"]["counts"] == {"empty_file": 1, "bad_json": 1}
    r = run_cli(
        "build",
        "--trajectories",
        str(tmp_path / "empty.jsonl"),
        str(FIX / "minisweagent_v1.traj.json"),
        "--out",
        str(tmp_path / "some"),
        "--context-steps",
        "1",
        "--skip-submit",
    )
    assert r.returncode == 0, r.stderr
    assert "1/1 trajectories -> 2 SRL instances" in r.stdout
    rows = [json.loads(line) for line in (tmp_path / "some/srl.jsonl").read_text().splitlines()]
    assert [len(r["prompt"]) for r in rows] == [2, 4]
    r = run_cli(
        "build", "--trajectories", str(FIX), "--out", str(tmp_path / "x"), "--max-prompt-tokens", "100"
    )
    assert r.returncode == 2 and "need --tokenizer" in r.stderr


@pytest.mark.slow
@pytest.mark.skipif(not bwrap_available(), reason="bubblewrap cannot create a sandbox here")
def test_cli_verify_keeps_trajectories_that_resolve(suite, tmp_path):
    inst, mirror = suite
    instances = mirror.parent / "instances.jsonl"
    instances.write_text(json.dumps(inst) + "\n")
    task = "Please solve this issue: head() drops the first item\n\nYou can execute bash commands"
    fixes = {  # mini-swe-agent: fixes the bug with sed, then submits
        "instance_id": inst["instance_id"],
        "info": {"mini_version": "1.9"},
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": task},
            {
                "role": "assistant",
                "content": "THOUGHT: fix\n\n```bash\nsed -i 's/items\\[1:\\]/items[:]/' slicer/__init__.py\n```",
            },
            {"role": "user", "content": "<returncode>0</returncode>\n<output>\n</output>"},
            {
                "role": "assistant",
                "content": "THOUGHT: done\n\n```bash\necho COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT\n```",
            },
        ],
    }
    looks = {  # SWE-smith: looks around and submits nothing
        "instance_id": inst["instance_id"],
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "<pr_description>\nhead() drops the first item\n</pr_description>"},
            {
                "role": "assistant",
                "content": "<function=bash>\n<parameter=command>ls</parameter>\n</function>",
            },
            {"role": "user", "content": "OBSERVATION:\nslicer\ntests"},
            {"role": "assistant", "content": SUBMIT},
        ],
    }
    unknown = {**looks, "instance_id": "other__repo-9"}
    experts = tmp_path / "experts.jsonl"
    experts.write_text("".join(json.dumps(t) + "\n" for t in (fixes, looks, unknown)))
    out = tmp_path / "verified.jsonl"
    r = run_cli(
        "verify", "--trajectories", str(experts), "--instances", str(instances), "--out", str(out), "-w", "2"
    )
    assert r.returncode == 0, r.stderr
    assert "1/2 trajectories reproduce a resolving patch" in r.stdout, r.stdout
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert [(x["source"].rsplit(":", 1)[1], x["resolved"]) for x in report["results"]] == [
        ("1", True),
        ("2", False),
    ]
    assert report["results"][1]["error"] == "empty patch"
    assert [(d["reason"], d["source"].rsplit(":", 1)[1]) for d in report["dropped"]] == [("no_instance", "3")]
    (kept,) = read_trajectories(out)
    assert (kept["source_format"], kept["resolved"], kept["instance_id"]) == (
        "swesrl",
        True,
        inst["instance_id"],
    )
    assert [s.action for s in kept["steps"]] == [
        "<function=bash>\n<parameter=command>sed -i 's/items\\[1:\\]/items[:]/' slicer/__init__.py</parameter>\n</function>",
        SUBMIT,
    ]
    r = run_cli("build", "-t", str(out), "-o", str(tmp_path / "ds"), "--only-resolved")
    assert r.returncode == 0 and "1/1 trajectories -> 2 SRL instances" in r.stdout


@pytest.mark.skipif(not bwrap_available(), reason="bubblewrap cannot create a sandbox here")
def test_round_trip_on_a_bundled_task_with_the_scripted_expert(tmp_path):
    """The tasks' scripted expert solves a bundled task through the agent loop (full history); its
    trajectory, replayed under the paper's SRL context, gives prompts equal to the step instances."""
    from swesrl.core.instances import default_mirror, load_instances
    from swesrl.tasks import build_suite
    from swesrl.tasks.expert import ScriptedExpert

    path = build_suite(tmp_path / "suite", n=1, seed=0)
    (inst,) = load_instances(path)
    mirror = default_mirror(path)
    plugins = ['sandbox.env.PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"']
    for kind, model in (("full", ScriptedExpert(dict(inst))), ("srl", None)):
        config = load_agent_config([f"context.kind={kind}", "step_limit=40", *plugins])
        rec = Recorder(model or get_model(f"replay:{tmp_path / 'full.json'}"))
        with env_for_instance(inst, config.sandbox, mirror) as env:
            traj = run_agent(inst, rec, env, config, traj_path=tmp_path / f"{kind}.json")
        assert traj["info"]["exit_status"] == "submitted", traj["info"]
        (read,) = read_trajectories(tmp_path / f"{kind}.json")
        assert len(read["steps"]) == len(rec.prompts) >= 5
        for instance in (inst, None):  # with the instance, and with the task read back from the trajectory
            rows, _ = build_step_instances(read, config.context, config=config, instance=instance)
            assert [r["step"] for r in rows] == list(range(len(rec.prompts)))
            for row in rows:
                assert row["prompt"] == rec.prompts[row["step"]], f"{kind} step {row['step']}"
        assert rows[-1]["expert_action"] == SUBMIT


@pytest.mark.skipif(not bwrap_available(), reason="bubblewrap cannot create a sandbox here")
def test_with_state_rows_carry_the_workspace_before_their_step(suite, tmp_path):
    """`--with-state` replays the expert in a sandbox: each row holds the diff before its step and the
    final patch; the execution reward restores exactly that state."""
    from swesrl.core.actions import format_action
    from swesrl.training.exec_reward import ExecutionConfig, ExecutionScorer
    from swesrl.training.srl import load_srl_dataset

    inst, mirror = suite
    config = load_agent_config()
    recorded = [*initial_messages(config, inst), *({"role": "assistant", "content": t} for t in EXPERT)]
    (tmp_path / "expert.json").write_text(
        json.dumps({"instance_id": inst["instance_id"], "messages": recorded})
    )
    with env_for_instance(inst, config.sandbox, mirror) as env:
        traj = run_agent(
            inst, get_model(f"replay:{tmp_path / 'expert.json'}"), env, config, tmp_path / "run.json"
        )
    opts = BuildOptions(instances={inst["instance_id"]: inst}, with_state=True, mirror=mirror)
    stats = build_dataset([tmp_path / "run.json"], tmp_path / "ds", opts, config=config)
    rows = [json.loads(line) for line in (tmp_path / "ds/srl.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 3, 4, 5]
    assert [bool(r["state"]["patch"]) for r in rows] == [False, False, True, True, True]
    assert "+    return items[:]" in rows[2]["state"]["patch"]
    assert all(r["state"]["final_patch"] == traj["info"]["submission"] for r in rows)
    assert stats["state_replay"] == {"matches": 1} and stats["options"]["with_state"]

    # the reward restores the state of step 3 (edit made): re-running the tests passes there
    (tmp_path / "instances.jsonl").write_text(json.dumps(inst) + "\n")
    cfg = ExecutionConfig(instances=str(tmp_path / "instances.jsonl"), mirror=str(mirror))
    column = load_srl_dataset(tmp_path / "ds/srl.jsonl")["state"]  # what TRL hands the reward
    assert column == [r["state"] for r in rows]
    expert = rows[3]["expert_action"]
    same = format_action("bash", {"command": "python3 -m pytest -q tests/ 2>&1 | tail -n 1"})
    with ExecutionScorer(cfg) as sc:
        got = sc([f"<think>t</think>{same}"], [expert], instance_id=[inst["instance_id"]], state=[column[3]])
    assert got == [1.0]

    # the CLI: --with-state needs --instances; with it, the same rows
    r = run_cli("build", "-t", str(tmp_path / "run.json"), "-o", str(tmp_path / "ds2"), "--with-state")
    assert r.returncode == 2 and "--with-state needs --instances" in r.stderr + r.stdout
    r = run_cli("build", "-t", str(tmp_path / "run.json"), "-o", str(tmp_path / "ds2"), "--with-state",
                "--instances", str(tmp_path / "instances.jsonl"), "--repo-mirror", str(mirror))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "final patch equal to the recorded one: 1" in r.stdout
    assert (tmp_path / "ds2/srl.jsonl").read_text() == (tmp_path / "ds/srl.jsonl").read_text()
