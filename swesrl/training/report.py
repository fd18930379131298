"""The demo's report: `report.md` (a table of the held-out evaluations before and after each training
stage) and PNG plots (resolve rate and step similarity per stage and held-out group)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from swesrl.tasks.splits import GROUPS
from swesrl.utils import atomic_write_json, atomic_write_text

STAGES = ("base", "sft", "srl")
LABELS = {"base": "starting checkpoint", "sft": "after SFT warm-up", "srl": "after SRL"}


def write_plots(out: Path, evals: dict, training_plots: list[Path]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    written = []
    for key, title in (
        ("resolve_rate", "held-out resolve rate"),
        ("step_similarity", "held-out step similarity"),
    ):
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        width = 0.27
        for j, g in enumerate(("all", *GROUPS)):
            vals = [evals[s][g][key] for s in STAGES]
            ax.bar([i + (j - 1) * width for i in range(len(STAGES))], vals, width, label=g)
        ax.set_xticks(range(len(STAGES)), [LABELS[s] for s in STAGES])
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        p = plots / f"{key}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(str(p))
    for p in training_plots:
        if p.is_file():
            dest = plots / f"{p.parent.parent.name}_{p.name}"
            shutil.copyfile(p, dest)
            written.append(str(dest))
    return written


def render_report(r: dict) -> str:
    ev = r["evaluations"]
    s = r["suite"]
    lines = [
        "# swesrl demo report",
        "",
        f"Budget: --minutes {r['minutes']}, seed {r['seed']}. Model: {r['model']['parameters']:,} parameters, "
        f"from `{r['model']['source']}`.",
        f"Suite: {s['n']} tasks; trained on {s['train_used']} train tasks; evaluated on {s['test_used']} held-out "
        f"tasks ({s['test_groups']['heldout_repo']} in unseen repositories with seen bug families, "
        f"{s['test_groups']['heldout_family']} of unseen bug families).",
        f"Expert (train): {r['expert']['train']['submitted']}/{r['expert']['train']['trajectories']} submitted, "
        f"{r['expert']['train']['mean_steps']} steps on average. Data: {r['data']['train']['srl_instances']} "
        f"SRL step instances (train), {r['data']['test']['srl_instances']} held-out step instances.",
        "",
        "| stage | resolve rate (all) | unseen repo | unseen family | step similarity (all) | unseen repo | unseen family | exact actions | format failures |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for st in STAGES:
        e = ev[st]
        lines.append(
            f"| {LABELS[st]} | {e['all']['resolve_rate']:.3f} ({e['all']['resolved']}/{e['all']['tasks']}) "
            f"| {e['heldout_repo']['resolve_rate']:.3f} | {e['heldout_family']['resolve_rate']:.3f} "
            f"| {e['all']['step_similarity']:.3f} | {e['heldout_repo']['step_similarity']:.3f} "
            f"| {e['heldout_family']['step_similarity']:.3f} | {e['all']['exact_actions']:.3f} "
            f"| {e['all']['format_failures']:.3f} |"
        )
    t = r["training"]
    lines += [
        "",
        f"SFT warm-up: {t['sft']['global_step']} steps, loss {fmt(t['sft']['first_loss'])} -> {fmt(t['sft']['last_loss'])}. "
        f"SRL: {t['srl']['global_step']} GRPO steps, last mean reward {fmt(t['srl']['last_reward'])}."
        + (f" SRL was skipped: {t['srl']['skipped']}" if t["srl"].get("skipped") else ""),
        "",
        "Step similarity is the mean SRL reward (2M/T of the greedy action vs the expert's, -1 on a format "
        "failure) on held-out step instances (task + last 2 expert steps). Resolve rate: the agent loop "
        "(greedy, SRL context) in local sandboxes, patches graded by the harness (FAIL_TO_PASS and PASS_TO_PASS).",
        "",
        "Stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in r["stage_seconds"].items()),
        "",
        *[f"![{Path(p).stem}](plots/{Path(p).name})" for p in r["plots"][:2]],
        "",
    ]
    return "\n".join(lines)


def fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, int | float) and math.isfinite(x) else "n/a"


def write_report(out: Path, report: dict, sft: dict, srl: dict, evals: dict) -> dict:
    """Complete `report` with the training summaries, the evaluations and the plots; write `report.json`
    and `report.md` in `out`; return it."""
    report["training"] = {
        "sft": {k: sft.get(k) for k in ("global_step", "first_loss", "last_loss", "final_model")},
        "srl": {k: srl.get(k) for k in ("global_step", "final_model", "skipped")}
        | {"last_reward": (srl.get("metrics") or {}).get("reward")},
    }
    report["evaluations"] = evals
    report["plots"] = write_plots(out, evals, [Path(p) for p in sft.get("plots", []) + srl.get("plots", [])])
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", render_report(report))
    return report
