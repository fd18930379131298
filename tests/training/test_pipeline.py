from __future__ import annotations

import json

from swesrl.training.pipeline import _run_stage, stage_done


def test_a_finished_stage_is_skipped_on_rerun(tmp_path):
    calls = []

    def train() -> dict:
        calls.append(1)
        return {"final_model": str(tmp_path / "final"), "steps": 3, "metrics": {"x": 1}}

    first = _run_stage("SRL", tmp_path, train)
    assert first["steps"] == 3 and calls == [1]
    assert json.loads((tmp_path / "DONE").read_text()) == {"final_model": str(tmp_path / "final"), "steps": 3}
    second = _run_stage("SRL", tmp_path, train)
    assert calls == [1] and second == stage_done(tmp_path)
