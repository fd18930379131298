"""A training stage around a TRL trainer: progress as data, resume, the final save, the summary.

The trainers never print (no tqdm bar, no raw metric dicts: `quiet_trainer`); the CLI or the demo
passes `on_step(step, max_steps, metrics)` and draws one rich line per stage with the key metrics.
Every metric still goes to `metrics.jsonl` (and TensorBoard / W&B when configured).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

OnStep = Callable[[int, int, dict], None]
KEY_METRICS = ("loss", "reward", "format_failure_rate", "dynamic_sampling/filtered_fraction", "kl")


def quiet_trainer(trainer, on_step: OnStep | None = None):
    """No console output from the trainer itself; `on_step` (if any) gets every logged step."""
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class StepCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if state.is_world_process_zero and logs and "train_runtime" not in logs:
                on_step(state.global_step, state.max_steps, dict(logs))

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if on_step is not None:
        trainer.add_callback(StepCallback())
    return trainer


def metrics_line(metrics: dict) -> str:
    """`loss 0.058 reward 0.896 ...` from a step's logged metrics (the keys present of KEY_METRICS)."""
    short = {"dynamic_sampling/filtered_fraction": "filtered", "format_failure_rate": "format fail"}
    parts = []
    for k in KEY_METRICS:
        v = metrics.get(k)
        if v is not None:
            try:
                parts.append(f"{short.get(k, k)} {float(v):.3g}")
            except (TypeError, ValueError):
                continue
    return " ".join(parts)


def step_progress(
    on_progress: Callable[[str, int, int | None, str], None] | None, label: str
) -> OnStep | None:
    """A trainer's `on_step` hook that reports to an `OnProgress` (`swesrl.utils`) under `label`."""
    if on_progress is None:
        return None
    return lambda step, max_steps, metrics: on_progress(label, step, max_steps or None, metrics_line(metrics))


def latest_checkpoint(out_dir: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(out_dir)) if Path(out_dir).is_dir() else None


def train_and_save(
    trainer, tokenizer, out_dir: Path, resume: bool, plots: bool, on_step: OnStep | None = None
) -> dict:
    """What every stage (SFT, SRL, RLVR) does with its trainer: quiet console (`on_step` gets the
    steps), resume from the latest checkpoint in `out_dir` when `resume`, train, save the model and
    tokenizer to `out_dir/final` (the main process writes files), plot `metrics.jsonl`. Returns the
    summary's common part; `log_history` is the trainer's, for the stage's own metrics."""
    from swesrl.training.plots import plot_metrics

    quiet_trainer(trainer, on_step)
    resume_from = latest_checkpoint(out_dir) if resume else None
    if resume_from:
        log.info("resuming from %s", resume_from)
    trainer.train(resume_from_checkpoint=resume_from)
    trainer.save_model(str(out_dir / "final"))
    main = trainer.is_world_process_zero()  # several processes: one writes the files
    if main:
        tokenizer.save_pretrained(str(out_dir / "final"))
    drawn = plot_metrics(out_dir / "metrics.jsonl", out_dir / "plots") if plots and main else []
    return {
        "global_step": trainer.state.global_step,
        "main_process": main,
        "resumed_from": resume_from,
        "final_model": str(out_dir / "final"),
        "plots": [str(p) for p in drawn],
        "log_history": trainer.state.log_history,
    }
