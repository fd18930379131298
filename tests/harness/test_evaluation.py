"""A whole run: predictions with bad input, reports and summary on disk, resume, regrading."""

from __future__ import annotations

import json

from swesrl.harness import evaluate, load_predictions
from tests.harness.test_instance import WRONG


def test_evaluate_writes_reports_summary_and_handles_bad_input(calc_suite, calc_mirror, tmp_path):
    path, insts = calc_suite
    ids = ["demo__calc-1", "demo__calc-2"]
    no_cmd = {**insts["demo__calc-1"], "instance_id": "demo__calc-nocmd", "test_cmd": ""}
    instances = [insts[i] for i in ids] + [no_cmd]
    preds_file = tmp_path / "preds.jsonl"
    preds_file.write_text(
        json.dumps({"instance_id": "demo__calc-1", "model_name_or_path": "m", "model_patch": WRONG})
        + "\n{not json\n"
        + json.dumps({"instance_id": "demo__calc-2", "model_patch": insts["demo__calc-2"]["patch"]})
        + "\n"
        + json.dumps({"instance_id": "demo__calc-2", "model_patch": "different"})
        + "\n"
        + json.dumps({"instance_id": "nobody__here-1", "model_patch": "x"})
        + "\n"
        + json.dumps({"instance_id": "demo__calc-nocmd", "model_patch": WRONG})
        + "\n"
        + json.dumps({"model_patch": "x"})
        + "\n"
    )
    preds, problems = load_predictions(preds_file)
    assert any(":2: not valid JSON" in p for p in problems) and any("no instance_id" in p for p in problems)
    out = tmp_path / "runs"
    s = evaluate(instances, preds, out, "r1", backend="local", workers=2, timeout=120, mirror=calc_mirror)
    assert s["total_instances"] == 3 and s["submitted_instances"] == 3
    assert s["unresolved_ids"] == ["demo__calc-1"] and s["resolved_ids"] == []
    assert s["error_ids"] == ["demo__calc-2", "demo__calc-nocmd"]
    assert "different patches" in s["errors"]["demo__calc-2"]
    assert "no test command" in s["errors"]["demo__calc-nocmd"]
    assert any("unknown instance id 'nobody__here-1'" in p for p in s["input_problems"])
    assert json.loads((out / "r1" / "summary.json").read_text()) == s
    for iid in ("demo__calc-1", "demo__calc-nocmd"):
        assert {p.name for p in (out / "r1" / iid).iterdir()} == {
            "patch.diff",
            "test_output.txt",
            "report.json",
        }
    assert not (out / "r1" / "demo__calc-2").exists()  # an input error is not a result: a fixed rerun runs it

    # resume: finished instances are skipped, the fixed one runs, the summary counts each once
    fixed = [p for p in preds if p.get("model_patch") != "different"]
    seen = []
    s2 = evaluate(
        instances, fixed, out, "r1", workers=1, timeout=120, mirror=calc_mirror, on_result=seen.append
    )
    assert [r["instance_id"] for r in seen] == ["demo__calc-2"]
    assert s2["resolved_ids"] == ["demo__calc-2"] and s2["unresolved_ids"] == ["demo__calc-1"]
    assert s2["error_ids"] == ["demo__calc-nocmd"] and s2["completed_instances"] == 2
    # a changed prediction under the same run id is graded again, not reported stale
    fixed[0] = {**fixed[0], "model_patch": insts["demo__calc-1"]["patch"]}
    s3 = evaluate(instances, fixed, out, "r1", timeout=120, mirror=calc_mirror)
    assert s3["resolved_ids"] == ["demo__calc-1", "demo__calc-2"] and s3["unresolved_ids"] == []
