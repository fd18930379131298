"""The suite's tasks are real: run in the local sandbox, every FAIL_TO_PASS test fails at the base
commit (with the test patch) and passes with the gold patch; every PASS_TO_PASS test passes in both."""

from __future__ import annotations

import base64

import pytest
from swebench.harness.log_parsers import PARSER_REGISTRY

from swesrl.core.instances import default_mirror, load_instances
from swesrl.envs import SandboxConfig, env_for_instance

parse_log_pytest = PARSER_REGISTRY["parse_log_pytest"]


def apply(env, patch: str) -> None:
    data = base64.b64encode(patch.encode()).decode()
    obs = env.execute(f"echo {data} | base64 -d | git apply -")
    assert obs.returncode == 0, obs.output


def test_statuses(env, inst) -> tuple[dict, dict]:
    apply(env, inst["test_patch"])
    before = parse_log_pytest(env.execute(inst["test_cmd"]).output, None)
    apply(env, inst["patch"])
    after = parse_log_pytest(env.execute(inst["test_cmd"]).output, None)
    return before, after


test_statuses.__test__ = False  # a helper, not a test


@pytest.mark.slow
def test_gold_patches_resolve_and_bugs_are_real(bundled_suite):
    config = SandboxConfig(backend="local", timeout=120)
    problems = []
    for inst in load_instances(bundled_suite):
        with env_for_instance(inst, config, mirror=default_mirror(bundled_suite)) as env:
            before, after = test_statuses(env, inst)
        for t in inst["FAIL_TO_PASS"]:
            if before.get(t) != "FAILED" or after.get(t) != "PASSED":
                problems.append(f"{inst['instance_id']} F2P {t}: {before.get(t)} -> {after.get(t)}")
        for t in inst["PASS_TO_PASS"]:
            if before.get(t) != "PASSED" or after.get(t) != "PASSED":
                problems.append(f"{inst['instance_id']} P2P {t}: {before.get(t)} -> {after.get(t)}")
        expected = set(inst["FAIL_TO_PASS"]) | set(inst["PASS_TO_PASS"])
        if set(after) != expected:
            problems.append(f"{inst['instance_id']}: tests run {sorted(after)} != F2P+P2P")
    assert not problems, "\n".join(problems)
