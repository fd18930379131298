"""Pipelines: stages run in order, each resumable; a finished stage is skipped when the pipeline runs again.

`Pipeline.stage(name, fn)` runs `fn()` unless the stage's marker exists, then writes the marker (the
stage's result as JSON, plus `_seconds`) last, atomically: a killed run leaves no marker for the stage
it was in, which runs again (trainers resume from their newest checkpoint, agent runs and evaluations
skip finished instances). `swesrl train pipeline` (`run_pipeline`: SRL, then RLVR from SRL's final
model; markers `DONE` in each stage's output folder) and `swesrl demo` (`swesrl/demo.py`; markers
`OUT/stages/<name>.json`) are both compositions of it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from swesrl.training.progress import step_progress
from swesrl.training.rlvr import RLVRConfig, train_rlvr
from swesrl.training.srl import SRLConfig, train_srl
from swesrl.utils import OnProgress, UserError, atomic_write_json

log = logging.getLogger(__name__)

OnStage = Callable[[str, str], None]
"""`on_stage(name, event)`, event `start`, `skip` or `done`: where a stage begins, is skipped, ends."""


def stage_done(marker: str | Path) -> dict | None:
    """A finished stage's result, from its marker file (or the `DONE` file of a folder), or None."""
    p = Path(marker)
    p = p / "DONE" if p.is_dir() else p
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


class Pipeline:
    """Stages with markers in `stages_dir` (`<name>.json`) unless a stage names its own marker."""

    def __init__(self, stages_dir: str | Path, on_stage: OnStage | None = None):
        self.stages_dir = Path(stages_dir)
        self.on_stage = on_stage or (lambda name, event: None)
        self.seconds: dict[str, float] = {}

    def settings(self, settings: dict, what: str = "run") -> None:
        """Record the run's settings (`run.json`); a folder holding a run with other settings is refused,
        not mixed in."""
        path = self.stages_dir / "run.json"
        old = stage_done(path)
        if old is not None and old != settings:
            raise UserError(
                f"{self.stages_dir.parent} holds a {what} with other settings ({path}); use another folder "
                "or the same settings"
            )
        atomic_write_json(path, settings)

    def stage(self, name: str, fn: Callable[[], dict], marker: str | Path | None = None) -> dict:
        path = Path(marker) if marker is not None else self.stages_dir / f"{name}.json"
        prev = stage_done(path)
        if prev is not None:
            log.info("%s: finished earlier (%s), skipped", name, path)
            self.seconds[name] = prev.get("_seconds", 0.0)
            self.on_stage(name, "skip")
            return prev
        self.on_stage(name, "start")
        t0 = time.monotonic()
        result = dict(fn())
        result["_seconds"] = round(time.monotonic() - t0, 1)
        self.seconds[name] = result["_seconds"]
        atomic_write_json(path, result)
        log.info("%s: finished in %.0fs", name, result["_seconds"])
        self.on_stage(name, "done")
        return result


def run_pipeline(
    srl: SRLConfig, rlvr: RLVRConfig, on_stage: OnStage | None = None, on_progress: OnProgress | None = None
) -> dict:
    """SRL, then RLVR from SRL's final model; markers `DONE` in each stage's output folder; each training
    stage reports its steps to `on_progress` (labels `SRL`, `RLVR`)."""
    pipe = Pipeline(srl.output.dir, on_stage)
    srl_summary = pipe.stage(
        "SRL",
        lambda: _flat(train_srl(srl, step_progress(on_progress, "SRL"))),
        marker=Path(srl.output.dir) / "DONE",
    )
    rlvr = rlvr.model_copy(
        update={"model": rlvr.model.model_copy(update={"path": srl_summary["final_model"]})}
    )
    rlvr_summary = pipe.stage(
        "RLVR",
        lambda: _flat(train_rlvr(rlvr, step_progress(on_progress, "RLVR"))),
        marker=Path(rlvr.output.dir) / "DONE",
    )
    return {"srl": srl_summary, "rlvr": rlvr_summary}


def _flat(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if isinstance(v, str | int | float | type(None))}
