"""SRL then RLVR (the paper's best recipe), resumable at any stage.

Each stage writes its own checkpoints and resumes from them; a finished stage leaves
`DONE` in its output folder and is skipped when the pipeline runs again. RLVR starts from
SRL's final model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from swesrl.training.rlvr import RLVRConfig, train_rlvr
from swesrl.training.srl import SRLConfig, train_srl
from swesrl.utils import atomic_write_json

log = logging.getLogger(__name__)


def stage_done(out_dir: str | Path) -> dict | None:
    marker = Path(out_dir) / "DONE"
    return json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else None


def _run_stage(name: str, out_dir: str | Path, train: Callable[[], dict]) -> dict:
    """Run one stage unless its DONE marker exists; write the marker when it finishes."""
    done = stage_done(out_dir)
    if done:
        log.info("%s already finished (%s); skipping", name, out_dir)
        return done
    summary = train()
    atomic_write_json(Path(out_dir) / "DONE", _flat(summary))
    return summary


def run_pipeline(srl: SRLConfig, rlvr: RLVRConfig) -> dict:
    srl_summary = _run_stage("SRL", srl.output.dir, lambda: train_srl(srl))
    rlvr = rlvr.model_copy(
        update={"model": rlvr.model.model_copy(update={"path": srl_summary["final_model"]})}
    )
    rlvr_summary = _run_stage("RLVR", rlvr.output.dir, lambda: train_rlvr(rlvr))
    return {"srl": srl_summary, "rlvr": rlvr_summary}


def _flat(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if isinstance(v, str | int | float | type(None))}
