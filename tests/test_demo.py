"""`swesrl demo` end to end on a tiny budget (real sandboxes, real tiny model, real training), and resume."""

from __future__ import annotations

import json
import math
import subprocess

import pytest

from swesrl.demo import run_demo, scaled
from swesrl.tasks.expert import MISTAKE_STEP
from swesrl.utils import UserError, iter_jsonl


def test_budgets_scale_with_minutes():
    from swesrl.config import load_config
    from swesrl.demo import DemoConfig

    cfg = load_config(DemoConfig, ["demo.yaml"])
    small, full = scaled(cfg, 2), scaled(cfg, 15)
    assert full.sft.steps == cfg.sft.steps and full.suite.test_tasks == cfg.suite.test_tasks
    assert 1 <= small.srl.steps < full.srl.steps or full.srl.steps == 1
    assert small.suite.test_tasks <= full.suite.test_tasks


def test_bad_minutes_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--minutes"):
        run_demo(tmp_path / "d", minutes=0)


@pytest.mark.slow
def test_demo_end_to_end_and_resume(tmp_path):
    out = tmp_path / "demo"
    small = [
        "suite.train_tasks=3",
        "suite.test_tasks=2",
        "sft.steps=2",
        "srl.steps=1",
        "srl.prompts_per_step=2",
        "expert_recovery=1.0",
    ]
    report = run_demo(out, minutes=1, seed=0, overrides=small)

    for name in ("report.md", "report.json", "plots/resolve_rate.png", "plots/step_similarity.png"):
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["evaluations"].keys() == {"base", "sft", "srl"}
    assert on_disk["expert"]["train"]["submitted"] == on_disk["expert"]["train"]["trajectories"] == 3
    # every train expert tried a wrong edit, was refused by the real editor, and recovered; the
    # wrong edit is no training target (its row asks for the right edit)
    assert on_disk["data"]["train"]["recovery_trajectories"] == 3
    rows = list(iter_jsonl(out / "data" / "train" / "srl.jsonl"))
    assert len(rows) == 15
    for r in rows:
        if r["step"] == MISTAKE_STEP + 1:
            assert "did not appear verbatim" in r["prompt"][-1]["content"]
            assert r["expert_action"] == next(
                x["expert_action"]
                for x in rows
                if x["instance_id"] == r["instance_id"] and x["step"] == MISTAKE_STEP
            )
    for stage, ev in on_disk["evaluations"].items():
        for group in ("all", "heldout_repo", "heldout_family"):
            m = ev[group]
            assert 0.0 <= m["resolve_rate"] <= 1.0, (stage, group)
            assert math.isfinite(m["step_similarity"]) and -1.0 <= m["step_similarity"] <= 1.0
            assert 0.0 <= m["format_failures"] <= 1.0
        assert ev["all"]["tasks"] == 2 and ev["all"]["step_instances"] >= 2
        # every held-out episode was graded by the harness
        for iid in (
            json.loads(line)["instance_id"] for line in (out / "eval" / stage / "steps.jsonl").open()
        ):
            assert (out / "eval" / stage / "harness" / iid / "report.json").is_file()
    assert on_disk["training"]["sft"]["global_step"] == 2
    srl = on_disk["training"]["srl"]
    # a starting model whose rollouts all fail the format gives GRPO no signal: the demo says so
    assert srl["global_step"] == 1 or "no signal" in srl["skipped"]
    assert "| after SRL |" in (out / "report.md").read_text()
    assert report["evaluations"]["srl"]["all"] == on_disk["evaluations"]["srl"]["all"]

    # a rerun with the same settings resumes: every stage is skipped, nothing is retrained
    stamps = {p.name: p.stat().st_mtime for p in (out / "stages").glob("*.json")}
    again = run_demo(out, minutes=1, seed=0, overrides=small)
    assert again["evaluations"] == on_disk["evaluations"]
    assert again["run_seconds_this_invocation"] < 60
    assert {p.name: p.stat().st_mtime for p in (out / "stages").glob("*.json") if p.name != "run.json"} == {
        k: v for k, v in stamps.items() if k != "run.json"
    }
    # other settings in the same folder are refused, not mixed in
    with pytest.raises(UserError, match="other settings"):
        run_demo(out, minutes=1, seed=1, overrides=small)


@pytest.mark.slow
def test_demo_cli_rejects_bad_minutes(tmp_path):
    r = subprocess.run(
        ["swesrl", "demo", "--out", str(tmp_path / "x"), "--minutes", "-1"], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert "--minutes must be positive" in r.stderr
