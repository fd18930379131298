"""Metrics to disk during training (metrics.jsonl) and PNG curves at the end (matplotlib, Agg)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from transformers import TrainerCallback

from swesrl.utils import append_jsonl

log = logging.getLogger(__name__)

CURVES = {
    "reward": ["reward", "rewards/srl_similarity/mean", "reward_mean"],
    "reward_std": ["reward_std", "rewards/srl_similarity/std"],
    "filtered_fraction": ["dynamic_sampling/filtered_fraction", "filtered_fraction"],
    "format_failure_rate": ["format_failure_rate"],
    "entropy": ["entropy"],
    "kl": ["kl"],
    "loss": ["loss", "train_loss"],
    "tokens_per_second": ["tokens_per_second"],
}


class MetricsFileCallback(TrainerCallback):
    """Append every log record (with its step) to a JSONL file, on the main process only."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            row = {"step": state.global_step}
            row.update({k: v for k, v in logs.items() if isinstance(v, int | float)})
            append_jsonl(self.path, row)


def read_metrics(path: str | Path) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_metrics(metrics_path: str | Path, out_dir: str | Path) -> list[Path]:
    """One PNG per curve present in the metrics file; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    out = Path(out_dir)
    written = []
    for name, keys in CURVES.items():
        pts = []
        for r in rows:
            key = next((k for k in keys if k in r), None)
            if key is not None and r[key] is not None and math.isfinite(r[key]):
                pts.append((r["step"], r[key]))
        if not pts:
            continue
        out.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) < 30 else None)
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    log.info("wrote %d plots to %s", len(written), out)
    return written
