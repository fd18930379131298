"""The execution-aware step reward on a real bundled task in real local sandboxes.

Equivalent pairs used (all run offline): `grep -rn X .` / `grep -n X -r .` (the issue's example),
`python3 -m pytest -q tests/F` / `cd tests && python3 -B -m pytest -q ./F` (stands in for
`pip install -e .` / `python setup.py develop`: the task environment has no pip and the bundled
repositories no setup.py, so that pair cannot run offline here), `cat -n F` / `nl -ba F`, and one
edit written four ways (the editor with the expert's anchor, with a longer anchor, `sed -i`, and a
Python one-liner)."""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import subprocess
import tempfile
from pathlib import Path

import pytest

from swesrl.core.actions import format_action, parse_action
from swesrl.core.instances import default_mirror, load_instances
from swesrl.envs.local import bwrap_available
from swesrl.training.exec_reward import (
    Effect,
    ExecutionConfig,
    ExecutionScorer,
    StepState,
    effect_similarity,
    execution_reward,
)
from swesrl.training.rewards import srl_reward

pytestmark = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap cannot create a sandbox here")
SUBMIT = format_action("submit")


def call(name: str, **params: str) -> str:
    return format_action(name, params)


def completion(action: str) -> str:
    return f"<think>\nreasoning\n</think>\n{action}"


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """A bundled task (seed 0): its instance, the buggy file's text and the gold edit."""
    from swesrl.tasks import build_suite

    path = build_suite(tmp_path_factory.mktemp("suite"), n=1, seed=0)
    (inst,) = load_instances(path)
    inst = dict(inst)
    patch = inst["patch"]
    rel = re.search(r"^--- a/(\S+)", patch, re.M).group(1)
    old = next(line[1:] for line in patch.splitlines() if line.startswith("-") and not line.startswith("---"))
    new = next(line[1:] for line in patch.splitlines() if line.startswith("+") and not line.startswith("+++"))
    src = default_mirror(path) / f"{inst['repo'].replace('/', '__')}.git"
    text = subprocess.run(
        ["git", "--git-dir", str(src), "show", f"{inst['base_commit']}:{rel}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {"instance": inst, "instances": str(path), "rel": rel, "old": old, "new": new, "text": text}


@pytest.fixture(scope="module")
def scorer(task):
    """One scorer (one pool of warm sandboxes) for the module, states made by hand: before any
    change (step 0) and with the fix applied (step 3, before submit)."""
    iid = task["instance"]["instance_id"]
    gold = task["instance"]["patch"]
    states = {
        f"{iid}#0": StepState(iid, "", gold),
        f"{iid}#3": StepState(iid, gold, gold),
    }
    cfg = ExecutionConfig(instances=task["instances"], timeout=3.0, workers=2)
    with ExecutionScorer(cfg, states=states, instances={iid: task["instance"]}) as sc:
        yield sc


def score(scorer, task, completions: list[str], expert: str, step: int = 0) -> list[float]:
    n = len(completions)
    iid = task["instance"]["instance_id"]
    return scorer([completion(c) for c in completions], [expert] * n, instance_id=[iid] * n, step=[step] * n)


def text_score(completions: list[str], expert: str) -> list[float]:
    return srl_reward([completion(c) for c in completions], [expert] * len(completions))


def test_equivalent_commands_score_1_under_execution_and_below_1_under_text(scorer, task):
    name = re.search(r"def (\w+)\(", task["old"]).group(1)
    path = f"/testbed/{task['rel']}"
    test_file = task["instance"]["FAIL_TO_PASS"][0].split("::")[0]
    pairs = [
        (call("bash", command=f"grep -rn {name} ."), call("bash", command=f"grep -n {name} -r .")),
        (
            call("bash", command=f"python3 -m pytest -q {test_file}"),
            call("bash", command=f"cd tests && python3 -B -m pytest -q ./{test_file.split('/', 1)[1]}"),
        ),
        (call("bash", command=f"cat -n {path}"), call("bash", command=f"nl -ba {path}")),
        (call("bash", command=f"cat -n {path}"), call("str_replace_editor", command="view", path=path)),
    ]
    for expert, policy in pairs[:3]:
        assert score(scorer, task, [policy], expert) == [1.0], policy
        assert text_score([policy], expert)[0] < 1.0
    # the editor's view numbers lines like `cat -n` but is not byte-identical: high, not 1
    view = score(scorer, task, [pairs[3][1]], pairs[3][0])[0]
    assert 0.5 < view < 1.0


def test_the_same_edit_spelled_three_ways_scores_1(scorer, task):
    path = f"/testbed/{task['rel']}"
    lines = task["text"].splitlines()
    i = lines.index(task["old"])
    expert = call(
        "str_replace_editor", command="str_replace", path=path, old_str=task["old"], new_str=task["new"]
    )
    longer = call(
        "str_replace_editor",
        command="str_replace",
        path=path,
        old_str=f"{task['old']}\n{lines[i + 1]}",
        new_str=f"{task['new']}\n{lines[i + 1]}",
    )
    repl = task["new"].replace("\\", "\\\\").replace("/", "\\/").replace("&", "\\&")
    sed = call("bash", command=f"sed -i {shlex.quote(f'{i + 1}s/.*/{repl}/')} {path}")
    code = f"import pathlib; p = pathlib.Path({path!r}); p.write_text(p.read_text().replace({task['old']!r}, {task['new']!r}))"
    python = call("bash", command=f"python3 -c {shlex.quote(code)}")
    # whitespace around the call and its parameters: the same canonical call
    spaced = expert.replace("<parameter=command>", "\n<parameter=command>") + "\n"
    policies = [longer, sed, python, spaced]
    assert score(scorer, task, policies, expert) == [1.0] * 4
    assert all(t < 1.0 for t in text_score(policies, expert))
    # a different edit of the same line scores by the similarity of the two diffs, below 1
    other = call(
        "str_replace_editor",
        command="str_replace",
        path=path,
        old_str=task["old"],
        new_str=task["old"] + "  # x",
    )
    wrong = score(scorer, task, [other], expert)[0]
    assert 0.3 < wrong < 1.0
    # an edit the editor refuses changes nothing: nothing in common with the expert's change
    refused = call(
        "str_replace_editor", command="str_replace", path=path, old_str="no such text", new_str="x"
    )
    assert score(scorer, task, [refused], expert) == [0.0]


def test_harmful_commands_score_low_and_do_not_leak_into_other_completions(task):
    iid = task["instance"]["instance_id"]
    cfg = ExecutionConfig(
        instances=task["instances"], timeout=3.0, workers=1
    )  # one sandbox: every call in turn
    with ExecutionScorer(
        cfg, states={f"{iid}#0": StepState(iid, "", "")}, instances={iid: task["instance"]}
    ) as sc:
        _harmful(sc, task)


def _harmful(scorer, task):
    name = re.search(r"def (\w+)\(", task["old"]).group(1)
    expert = call("bash", command=f"grep -rn {name} .")
    harmful = [
        call("bash", command="rm -rf /testbed/* /testbed/.git"),
        call("bash", command="git config core.fsmonitor 'echo pwned'"),
        call("bash", command=f"echo '{name}' > /tmp/planted; cat /tmp/planted"),
        call("bash", command=f"sed -i 's/{name}/x/' /testbed/{task['rel']}; grep -rn {name} ."),
    ]
    after = call("bash", command=f"grep -n {name} -r .")  # runs after them in the same batch
    opened = scorer.pool.opened
    rewards = score(scorer, task, harmful, expert)
    assert rewards[:3] == [0.0, 0.0, 0.0] and rewards[3] < 0.5, rewards
    assert scorer.last.failed == 3
    assert scorer.pool.opened >= opened + 3  # .git and /tmp changes: those sandboxes were replaced
    assert score(scorer, task, [after], expert) == [1.0]  # the sed edit was undone before this call
    assert scorer.pool.open == 1


def test_a_timeout_scores_as_a_failed_effect_and_the_step_goes_on(scorer, task):
    expert = call("bash", command="ls")
    rewards = score(scorer, task, [call("bash", command="sleep 60"), call("bash", command="ls .")], expert)
    assert rewards == [0.0, 1.0]
    assert scorer.last.failed == 1


def test_identical_completions_are_executed_once(scorer, task):
    expert = call("bash", command="ls -la")
    policy = call("bash", command="ls -la .")
    rewards = score(scorer, task, [policy] * 8, expert)
    assert len(set(rewards)) == 1
    assert scorer.last.executed == 2  # the expert's action and the policy's, once each
    score(scorer, task, [policy] * 8, expert)
    assert scorer.last.executed == 0  # both effects are cached for later steps


def test_submit_compares_the_patch_with_the_experts_final_patch(scorer, task):
    read = call("bash", command="ls")
    assert score(scorer, task, [SUBMIT], SUBMIT, step=3) == [1.0]
    assert score(scorer, task, [SUBMIT], read, step=3) == [1.0]  # the fix is in: this patch is the final one
    assert score(scorer, task, [SUBMIT], read, step=0) == [0.0]  # nothing changed yet: an empty patch
    assert score(scorer, task, [read], SUBMIT, step=3) == [0.0]  # the expert submits, the policy does not


def test_format_failures_stay_minus_one_and_mixed_weights_text_and_execution(scorer, task):
    name = re.search(r"def (\w+)\(", task["old"]).group(1)
    expert = call("bash", command=f"grep -rn {name} .")
    policy = call("bash", command=f"grep -n {name} -r .")
    iid = task["instance"]["instance_id"]
    comps = [completion(policy), "no call at all", policy]  # the last one lacks <think>
    kw = {"instance_id": [iid] * 3, "step": [0] * 3}
    assert scorer(comps, [expert] * 3, **kw)[1:] == [-1.0, -1.0]
    text = srl_reward(comps[:1], [expert])[0]
    mixed = execution_reward(comps, [expert] * 3, scorer, mode="mixed", text_weight=0.25, **kw)
    assert mixed[0] == pytest.approx(0.25 * text + 0.75 * 1.0) and mixed[1:] == [-1.0, -1.0]


def test_rows_without_a_state_fall_back_to_the_text_reward(scorer, task):
    expert = call("bash", command="ls")
    policy = call("bash", command="ls .")
    iid = task["instance"]["instance_id"]
    got = scorer([completion(policy)], [expert], instance_id=[iid], step=[7])
    assert got == text_score([policy], expert) and scorer.last.fallback == 1


def test_effect_similarity_rules():
    read = Effect(output="3 passed in 0.05s\n", returncode=0)
    assert effect_similarity(Effect(output="3 passed in 0.41s\n"), read) == 1.0  # timings masked
    assert effect_similarity(Effect(output="3 passed in 0.05s\n", returncode=1), read) == 0.5
    assert effect_similarity(Effect(output="3 passed in 0.05s\n", delta="diff"), read) == 0.5
    edit = Effect(output="edited", delta="diff --git a/x b/x\n-a\n+b\n")
    assert effect_similarity(Effect(output="", delta=edit.delta), edit) == 1.0
    assert effect_similarity(Effect(output="edited", delta=""), edit) == 0.0
    assert effect_similarity(Effect(delta=None, failed=".git metadata changed"), read) == 0.0


def test_sandboxes_are_closed_even_when_scoring_fails(task, tmp_path):
    iid = task["instance"]["instance_id"]
    pattern = os.path.join(tempfile.gettempdir(), f"swesrl-local-{os.getpid()}-*")
    before = set(glob.glob(pattern))
    cfg = ExecutionConfig(instances=task["instances"], timeout=5.0, workers=2)
    broken = dict(task["instance"], base_commit="0" * 40)  # cannot be checked out: no sandbox starts
    sc = ExecutionScorer(cfg, states={f"{iid}#0": StepState(iid, "", "")}, instances={iid: broken})
    got = sc(
        [completion(call("bash", command="ls ."))], [call("bash", command="ls")], instance_id=[iid], step=[0]
    )
    assert got == text_score([call("bash", command="ls .")], call("bash", command="ls"))
    assert sc.last.fallback == 1 and sc.last.errors
    sc.close()
    with ExecutionScorer(
        cfg, states={f"{iid}#0": StepState(iid, "", "")}, instances={iid: task["instance"]}
    ) as ok:
        ok(
            [completion(call("bash", command="ls ."))],
            [call("bash", command="ls")],
            instance_id=[iid],
            step=[0],
        )
        assert ok.pool.open >= 1
    assert ok.pool.open == 0
    assert set(glob.glob(pattern)) == before


def test_make_reward_func_builds_it_from_the_config_with_trls_signature(task, tmp_path):
    from swesrl.training.srl import RewardConfig, make_reward_func

    iid = task["instance"]["instance_id"]
    prompt = [{"role": "user", "content": "fix it"}]
    expert = call("bash", command="ls")
    row = {"instance_id": iid, "step": 0, "prompt": prompt, "expert_action": expert,
           "state": {"patch": "", "final_patch": task["instance"]["patch"]}}  # fmt: skip
    cfg = RewardConfig(compare="execution", execution={"instances": task["instances"]})
    func = make_reward_func(cfg)
    logged = {}
    try:
        got = func(
            prompts=[prompt] * 2,
            completions=[[{"role": "assistant", "content": completion(call("bash", command="ls ."))}]] * 2,
            completion_ids=[[1], [1]],
            expert_action=[expert] * 2,
            instance_id=[iid] * 2,
            step=[0, 0],
            state=[row["state"], None],  # the dataset's column: the second row has no state
            trainer_state=None,
            log_extra=None,
            log_metric=lambda k, v: logged.__setitem__(k, v),
        )
    finally:
        func.close()
    assert got == [1.0, srl_reward([completion(call("bash", command="ls ."))], [expert])[0]]
    assert logged["exec/executed"] == 2 and logged["exec/fallback_rate"] == 0.5
    assert logged["format_failure_rate"] == 0.0
    with pytest.raises(ValueError, match="data"):  # the states come with the rows: no second source
        RewardConfig(compare="execution", execution={"data": "srl.jsonl", "instances": task["instances"]})


def test_network_cannot_be_turned_on():
    with pytest.raises(ValueError, match="network"):
        ExecutionConfig(sandbox={"network": True})


def test_srl_data_without_states_is_one_clear_error_and_rows_carry_their_state(tmp_path):
    from swesrl.training.srl import load_srl_config, load_srl_dataset, train_srl
    from swesrl.utils import UserError

    base = {"instance_id": "a", "step": 0, "prompt": [{"role": "user", "content": "x"}], "expert_action": "x"}
    plain, with_state = tmp_path / "plain.jsonl", tmp_path / "state.jsonl"
    plain.write_text(json.dumps(base) + "\n")
    with_state.write_text(
        json.dumps(base | {"state": {"patch": "p", "final_patch": "f"}})
        + "\n"
        + json.dumps(base | {"step": 1})
        + "\n"
    )
    assert "state" not in load_srl_dataset(plain).column_names
    assert load_srl_dataset(with_state)["state"] == [{"patch": "p", "final_patch": "f"}, None]
    cfg = load_srl_config("srl_tiny.yaml", [f"data.path={plain}", "reward.compare=execution",
                                            f"output.dir={tmp_path / 'run'}"])  # fmt: skip
    with pytest.raises(UserError, match="--with-state"):
        train_srl(cfg)


def test_verl_export_scores_by_execution_with_the_state_in_extra_info(task, tmp_path):
    import importlib.util

    import pyarrow.parquet as pq

    from swesrl.training.export import export_verl

    iid = task["instance"]["instance_id"]
    name = re.search(r"def (\w+)\(", task["old"]).group(1)
    expert = call("bash", command=f"grep -rn {name} .")
    row = {"instance_id": iid, "step": 0, "n_steps": 4, "prompt": [{"role": "user", "content": "fix"}],
           "expert_action": expert, "expert_thought": "t",
           "state": {"patch": "", "final_patch": task["instance"]["patch"]}}  # fmt: skip
    data = tmp_path / "srl.jsonl"
    data.write_text(json.dumps(row) + "\n")
    export_verl(data, tmp_path / "verl", compare="execution", execution={"instances": task["instances"]})
    (t,) = pq.read_table(tmp_path / "verl" / "train.parquet").to_pylist()
    assert t["extra_info"]["state"] == row["state"]
    spec = importlib.util.spec_from_file_location("exec_reward_mod", tmp_path / "verl" / "srl_reward.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    try:
        policy = completion(call("bash", command=f"grep -n {name} -r ."))
        assert mod.compute_score(t["data_source"], policy, expert, t["extra_info"]) == 1.0
        batch = mod.compute_score(
            data_sources=[t["data_source"]] * 2,
            solution_strs=[policy, "no call"],
            ground_truths=[expert] * 2,
            extra_infos=[t["extra_info"]] * 2,
        )
        assert batch == [1.0, -1.0]
    finally:
        mod._scorer().close()
    with pytest.raises(Exception, match="instances"):
        export_verl(data, tmp_path / "verl2", compare="execution")


@pytest.mark.slow
def test_swesrl_train_srl_runs_with_the_execution_reward(task, tmp_path):
    """One GRPO step of `train_srl` (TRL's GRPOTrainer) with `reward.compare: execution` on the shipped
    tiny checkpoint: the reward function is called with TRL's signature and logs its metrics."""

    from swesrl.training.srl import load_srl_config, train_srl

    iid = task["instance"]["instance_id"]
    name = re.search(r"def (\w+)\(", task["old"]).group(1)
    rows = [
        {"instance_id": iid, "step": k, "n_steps": 2,
         "prompt": [{"role": "user", "content": f"{task['instance']['problem_statement']}\nstep {k}"}],
         "expert_action": call("bash", command=f"grep -rn {name} /testbed"),
         "state": {"patch": "", "final_patch": task["instance"]["patch"]}}
        for k in range(2)
    ]  # fmt: skip
    data = tmp_path / "srl.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ckpt = Path(__file__).resolve().parents[2] / "swesrl" / "checkpoints" / "tiny-demo"
    cfg = load_srl_config(
        "srl_tiny.yaml",
        [
            f"model.path={ckpt}",
            f"data.path={data}",
            f"output.dir={tmp_path / 'run'}",
            "reward.compare=execution",
            f"reward.execution.instances={task['instances']}",
            "dynamic_sampling.enabled=false",
            "train.max_steps=1",
            "train.max_completion_length=64",
            "output.report_to=[none]",
            "output.plots=false",
        ],
    )
    summary = train_srl(cfg)
    assert summary["global_step"] == 1
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    step = next(r for r in logged if "reward" in r)
    assert -1 <= step["reward"] <= 1 and step["exec/fallback_rate"] == 0.0  # each row brought its state


def test_only_commands_that_cannot_write_skip_the_check():
    from swesrl.training.exec_reward import is_pure_read

    reads = [
        "grep -rn foo .",
        "cat -n a.py | head -n 20",
        "ls -la src",
        "grep -n 'x y' -r . | wc -l",
        "tail -n 5 a",
    ]
    writes = [
        "grep foo . > out", "cat a >> b", "tail -f log", "tail -n 5 -f log", "sort -ro out a", "uniq a b",
        "file -C -m m", "sed -n w.txt a", "ls; rm -rf .", "ls && touch x", "cat $(touch x)", "cat `touch x`",
        "ls | tee out", "git status", "grep -rn foo . & rm a", "FOO=1 ls", "cat a\nrm a", "ls *.py", "",
    ]  # fmt: skip
    assert all(is_pure_read(c) for c in reads)
    assert not any(is_pure_read(c) for c in writes)


@pytest.mark.docker
def test_the_docker_backend_scores_through_the_same_protocol(task, docker_client):
    iid = task["instance"]["instance_id"]
    name = re.search(r"def (\w+)\(", task["old"]).group(1)
    path = f"/testbed/{task['rel']}"
    cfg = ExecutionConfig(instances=task["instances"], timeout=5.0, workers=1, sandbox={"backend": "docker"})
    states = {f"{iid}#0": StepState(iid, "", task["instance"]["patch"])}
    expert_read = call("bash", command=f"grep -rn {name} .")
    expert_edit = call(
        "str_replace_editor", command="str_replace", path=path, old_str=task["old"], new_str=task["new"]
    )
    repl = task["new"].replace("\\", "\\\\").replace("/", "\\/").replace("&", "\\&")
    i = task["text"].splitlines().index(task["old"])
    sed = call("bash", command=f"sed -i {shlex.quote(f'{i + 1}s/.*/{repl}/')} {path}")
    with ExecutionScorer(cfg, states=states, instances={iid: task["instance"]}) as sc:
        assert score(sc, task, [call("bash", command=f"grep -n {name} -r .")], expert_read) == [1.0]
        assert score(sc, task, [sed, call("bash", command="rm -rf /testbed/.git")], expert_edit) == [1.0, 0.0]
        assert sc.last.failed == 1


def _state_patch(task, tmp_path, script: str) -> str:
    """The patch `script` (shell, run in a clone of the task at base_commit) makes: a hand-made state."""
    src = default_mirror(task["instances"]) / f"{task['instance']['repo'].replace('/', '__')}.git"
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(src), str(clone)], check=True)
    subprocess.run(["git", "checkout", "-q", task["instance"]["base_commit"]], cwd=clone, check=True)
    subprocess.run(["bash", "-c", script], cwd=clone, check=True)
    subprocess.run(["git", "add", "-A"], cwd=clone, check=True)
    return subprocess.run(
        ["git", "diff", "--cached"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout


def test_the_runners_edit_diff_and_gits_agree_and_the_state_comes_back(task, tmp_path):
    """Editor edits are measured and undone by the sandbox's runner (no git add, no checkout); a
    bash edit goes through git. Same change, same diff: 1.0, both ways round, for a new file (on a
    state without ignore rules) and an edit; after either, the sandbox is at its state again."""

    iid = task["instance"]["instance_id"]
    path = f"/testbed/{task['rel']}"
    state = StepState(iid, _state_patch(task, tmp_path, "git rm -q .gitignore"), "")
    cfg = ExecutionConfig(instances=task["instances"], timeout=5.0, workers=1)
    text = "def added(x):\n    return x + 1"  # a call's parameters lose their trailing newline
    create = call("str_replace_editor", command="create", path="/testbed/added.py", file_text=text)
    printf = call("bash", command=f"printf %s {shlex.quote(text)} > /testbed/added.py")
    edit = call(
        "str_replace_editor", command="str_replace", path=path, old_str=task["old"], new_str=task["new"]
    )
    sed_line = task["text"].splitlines().index(task["old"]) + 1
    repl = task["new"].replace("\\", "\\\\").replace("/", "\\/").replace("&", "\\&")
    sed = call("bash", command=f"sed -i {shlex.quote(f'{sed_line}s/.*/{repl}/')} {path}")
    with ExecutionScorer(cfg, states={f"{iid}#0": state}, instances={iid: task["instance"]}) as sc:
        for expert, policy in ((create, printf), (printf, create), (edit, sed), (sed, edit)):
            sc.expert_cache.clear()
            sc.policy_cache.clear()
            assert sc([completion(policy)], [expert], instance_id=[iid], step=[0]) == [1.0], (expert, policy)
            assert sc.last.fallback == 0
            for sb in sc.pool._idle.values():  # back at the state: the file as it was, no added.py
                assert (sb.env.workspace / task["rel"]).read_text() == task["text"]
                assert not (sb.env.workspace / "added.py").exists()
                assert not (sb.env.workspace / ".gitignore").exists()
        assert sc.ways["runner"] == 4 and sc.ways["git"] == 4, sc.ways


def test_editor_edits_reaching_git_metadata_fail_and_replace_the_sandbox(task, tmp_path):
    """The runner measures only files of the work tree: an editor path into .git (through `..` or a
    symlink the state holds) goes the general way, where the changed .git fails the effect."""
    iid = task["instance"]["instance_id"]
    patch = _state_patch(task, tmp_path, "ln -s .git/config gitconfig")
    cfg = ExecutionConfig(instances=task["instances"], timeout=5.0, workers=1)
    expert = call("str_replace_editor", command="str_replace", path=f"/testbed/{task['rel']}",
                  old_str=task["old"], new_str=task["new"])  # fmt: skip
    hook = "[core]\n\tfsmonitor = touch /tmp/pwned\n"
    attacks = [
        call(
            "str_replace_editor",
            command="str_replace",
            path=f"/testbed/{os.path.dirname(task['rel'])}/../.git/config",
            old_str="[core]\n",
            new_str=hook,
        ),  # fmt: skip
        call(
            "str_replace_editor",
            command="str_replace",
            path="/testbed/gitconfig",
            old_str="[core]\n",
            new_str=hook,
        ),
    ]
    with ExecutionScorer(
        cfg, states={f"{iid}#0": StepState(iid, patch, "")}, instances={iid: task["instance"]}
    ) as sc:
        for attack in attacks:
            opened = sc.pool.opened
            assert sc([completion(attack)], [expert], instance_id=[iid], step=[0]) == [0.0]
            assert sc.last.failed == 1 and sc.pool.opened == opened + 1 and sc.pool.open == 0


def test_the_runners_fingerprint_sees_a_same_size_rewrite_in_the_same_clock_tick(tmp_path, monkeypatch):
    """ctime has a coarse clock: a same-size rewrite right after the reference fingerprint could keep
    name, size, ctime and inode; files changed near or after the reference are hashed by content, so
    an in-place rewrite is seen whatever the clock did."""
    import importlib.util

    work, state = tmp_path / "testbed", tmp_path / "state"
    (work / ".git").mkdir(parents=True)
    state.mkdir()
    monkeypatch.setenv("SWESRL_WORKDIR", str(work))
    monkeypatch.setenv("SWESRL_STATE", str(state))
    monkeypatch.setenv("SWESRL_UNSANDBOXED", "1")
    spec = importlib.util.spec_from_file_location(
        "runner_under_test", Path(swesrl_envs_dir()) / "runner_script.py"
    )
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    f = work / "a.py"
    f.write_bytes(b"x = 1\n")
    ref = runner.fingerprint(None)
    assert runner.fingerprint(ref["time"]) == ref  # nothing changed: the same digests
    with open(f, "r+b") as fh:  # in place: same inode, same size
        fh.write(b"y")
    after = runner.fingerprint(ref["time"])
    assert after["work"] != ref["work"] and after["git"] == ref["git"] and after["box"] == ref["box"]
    (work / ".git" / "config").write_text("[core]\n")
    assert runner.fingerprint(ref["time"])["git"] != ref["git"]


def swesrl_envs_dir() -> str:
    import swesrl.envs

    return os.path.dirname(swesrl.envs.__file__)


def test_a_new_ignore_file_is_measured_as_git_sees_it(task, tmp_path):
    """A new .gitignore changes what `git add -A` takes (here: `*` ignores itself, so git sees no
    change), so an editor create of one is measured the general way, as the shell's is."""
    iid = task["instance"]["instance_id"]
    state = StepState(iid, _state_patch(task, tmp_path, "git rm -q .gitignore"), "")
    cfg = ExecutionConfig(instances=task["instances"], timeout=5.0, workers=1)
    path = f"/testbed/{os.path.dirname(task['rel'])}/.gitignore"
    editor = call("str_replace_editor", command="create", path=path, file_text="*")
    shell = call("bash", command=f"printf '*' > {path}")
    with ExecutionScorer(cfg, states={f"{iid}#0": state}, instances={iid: task["instance"]}) as sc:
        sc([completion(editor)], [shell], instance_id=[iid], step=[0])
        assert sc.ways["runner"] == 0 and sc.ways["git"] == 2
        for cache, action in ((sc.expert_cache, shell), (sc.policy_cache, editor)):
            assert cache.get((state.key, parse_action(action)[1].canonical())).delta == ""


def test_changes_under_dev_are_seen_and_do_not_leak_into_other_completions(task):
    """/dev is a private writable tmpfs in the local sandbox (bubblewrap's --dev; its device nodes are
    bind mounts that cannot be removed): an action that plants a file in /dev/shm or /dev changes
    what later commands in that sandbox see. The fingerprint covers /dev, so such an action scores 0
    and its sandbox is replaced."""
    iid = task["instance"]["instance_id"]
    cfg = ExecutionConfig(instances=task["instances"], timeout=3.0, workers=1)  # one sandbox
    with ExecutionScorer(
        cfg, states={f"{iid}#0": StepState(iid, "", "")}, instances={iid: task["instance"]}
    ) as sc:
        expert = call("bash", command="ls -a /dev/shm && ls /dev")
        planting = [
            call("bash", command="echo x > /dev/shm/planted"),
            call("bash", command="mkdir /dev/planted"),
        ]
        opened = sc.pool.opened
        assert score(sc, task, planting, expert) == [0.0, 0.0]
        assert sc.last.failed == 2  # "files outside the repository changed", not a low similarity
        assert sc.pool.opened >= opened + 2  # both sandboxes were replaced
        after = call("bash", command="ls -a /dev/shm; ls /dev")  # same effect as the expert's
        assert score(sc, task, [after], expert) == [1.0]
