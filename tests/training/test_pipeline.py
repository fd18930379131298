from __future__ import annotations

import json

import pytest

from swesrl.training.pipeline import Pipeline, stage_done
from swesrl.utils import UserError


def test_a_finished_stage_is_skipped_on_rerun(tmp_path):
    calls = []

    def train() -> dict:
        calls.append(1)
        return {"final_model": str(tmp_path / "final"), "steps": 3}

    events = []
    pipe = Pipeline(tmp_path / "stages", on_stage=lambda name, event: events.append((name, event)))
    first = pipe.stage("SRL", train, marker=tmp_path / "DONE")
    assert first["steps"] == 3 and calls == [1] and events == [("SRL", "start"), ("SRL", "done")]
    on_disk = json.loads((tmp_path / "DONE").read_text())
    assert on_disk == first and on_disk["final_model"] == str(tmp_path / "final")
    second = Pipeline(tmp_path / "stages", on_stage=lambda name, event: events.append((name, event))).stage(
        "SRL", train, marker=tmp_path / "DONE"
    )
    assert calls == [1] and second == stage_done(tmp_path) == first and events[-1] == ("SRL", "skip")


def test_a_failed_stage_leaves_no_marker_and_runs_again(tmp_path):
    pipe = Pipeline(tmp_path)

    def boom() -> dict:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        pipe.stage("sft", boom)
    assert stage_done(tmp_path / "sft.json") is None
    assert pipe.stage("sft", lambda: {"ok": 1})["ok"] == 1
    assert stage_done(tmp_path / "sft.json")["ok"] == 1 and pipe.seconds["sft"] >= 0


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    Pipeline(tmp_path / "stages").settings({"seed": 0})
    Pipeline(tmp_path / "stages").settings({"seed": 0})  # the same settings resume
    with pytest.raises(UserError, match="other settings"):
        Pipeline(tmp_path / "stages").settings({"seed": 1})
