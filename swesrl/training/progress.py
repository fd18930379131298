"""Training progress as data: a TrainerCallback that hands each logged step to a function.

The trainers never print (no tqdm bar, no raw metric dicts: `quiet_trainer`); the CLI or the demo
passes `on_step(step, max_steps, metrics)` and draws one rich line per stage with the key metrics.
Every metric still goes to `metrics.jsonl` (and TensorBoard / W&B when configured).
"""

from __future__ import annotations

from collections.abc import Callable

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
