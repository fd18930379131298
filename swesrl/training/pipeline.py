"""SRL then RLVR (the paper's best recipe), resumable at any stage.

Each stage writes its own checkpoints and resumes from them; a finished stage leaves
`DONE` in its output folder and is skipped when the pipeline runs again. RLVR starts from
SRL's final model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from swesrl.training.rlvr import RLVRConfig, train_rlvr
from swesrl.training.srl import SRLConfig, train_srl
from swesrl.utils import atomic_write_json

log = logging.getLogger(__name__)


def stage_done(out_dir: str | Path) -> dict | None:
    marker = Path(out_dir) / "DONE"
    return json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else None


def run_pipeline(srl: SRLConfig, rlvr: RLVRConfig) -> dict:
    done = stage_done(srl.output.dir)
    if done:
        log.info("SRL already finished (%s); skipping", srl.output.dir)
        srl_summary = done
    else:
        srl_summary = train_srl(srl)
        atomic_write_json(Path(srl.output.dir) / "DONE", _flat(srl_summary))
    rlvr = rlvr.model_copy(
        update={"model": rlvr.model.model_copy(update={"path": srl_summary["final_model"]})}
    )
    done = stage_done(rlvr.output.dir)
    if done:
        log.info("RLVR already finished (%s); skipping", rlvr.output.dir)
        rlvr_summary = done
    else:
        rlvr_summary = train_rlvr(rlvr)
        atomic_write_json(Path(rlvr.output.dir) / "DONE", _flat(rlvr_summary))
    return {"srl": srl_summary, "rlvr": rlvr_summary}


def _flat(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if isinstance(v, str | int | float | type(None))}
