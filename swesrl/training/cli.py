"""`swesrl data`, `swesrl train`, `swesrl export` and `swesrl demo`."""

import typer

from swesrl.core.instances import default_mirror, load_instances
from swesrl.core.trajectories import expand_paths
from swesrl.utils import UserError, atomic_write_json, progress_bars, step_bar

data_app = typer.Typer(no_args_is_help=True, help="Build SRL / SFT datasets from expert trajectories.")
train_app = typer.Typer(no_args_is_help=True, help="Train: SFT, SRL (GRPO + dynamic sampling), RLVR.")
export_app = typer.Typer(no_args_is_help=True, help="Export datasets for other engines (verl).")
COMMANDS: dict = {}


# ---- swesrl data: trajectory readers, step instances ------------------------------------------


def _load_tokenizer(name: str | None):
    if not name:
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load tokenizer {name}: {str(e).splitlines()[0]}") from None


def _instances_by_id(path) -> dict:

    return {i["instance_id"]: dict(i) for i in load_instances(path)}


@data_app.command("build")
def data_build(
    trajectories: list[str] = typer.Option(
        ...,
        "--trajectories",
        "-t",
        help="Trajectory files or folders (JSONL, JSON, .traj; any supported format).",
    ),
    out: str = typer.Option(..., "--out", "-o", help="Output folder: srl.jsonl, sft.jsonl, stats.json."),
    more: list[str] = typer.Argument(
        None, help="More trajectory files: `--trajectories a.jsonl b.traj dir/`.", show_default=False
    ),
    context_steps: int = typer.Option(
        2, "--context-steps", "-k", help="Action/observation pairs in each SRL prompt (paper: 2)."
    ),
    full_history: bool = typer.Option(
        False, "--full-history", help="Prompts hold the whole history instead of the last k steps."
    ),
    tokenizer: str = typer.Option(
        None, "--tokenizer", help="Tokenizer (name or path) for token budgets and prompt-length stats."
    ),
    max_prompt_tokens: int = typer.Option(
        None,
        "--max-prompt-tokens",
        help="Clip observations so prompts fit; drop prompts that cannot (needs --tokenizer).",
    ),
    max_observation_tokens: int = typer.Option(
        None,
        "--max-observation-tokens",
        help="Clip every observation to this many tokens, head and tail kept (needs --tokenizer).",
    ),
    only_resolved: bool = typer.Option(
        False,
        "--only-resolved",
        help="Keep only trajectories marked resolved (e.g. by `swesrl data verify`).",
    ),
    skip_submit: bool = typer.Option(False, "--skip-submit", help="Make no instances of `submit` steps."),
    max_steps: int = typer.Option(
        None, "--max-steps", help="Make instances of the first N steps of each trajectory only."
    ),
    dedupe: bool = typer.Option(
        True, "--dedupe/--no-dedupe", help="Drop repeated trajectories and repeated (prompt, action) rows."
    ),
    instances: str = typer.Option(
        None, "--instances", help="Instances file: task messages render the real instances where ids match."
    ),
    config: list[str] = typer.Option(
        [], "--config", "-c", help="Agent config YAML files or key=value overrides (templates, context)."
    ),
    workers: int = typer.Option(
        1, "--workers", "-w", help="Processes that cut trajectories (same output, same order)."
    ),
    with_state: bool = typer.Option(
        False,
        "--with-state",
        help="Replay each trajectory in a sandbox; every SRL row gets the state before its step "
        "(for reward.compare=execution; needs --instances).",
    ),
    backend: str = typer.Option("local", "--backend", help="--with-state: sandbox backend, local or docker."),
    mirror: str = typer.Option(
        None,
        "--repo-mirror",
        help="--with-state: folder of <owner>__<name>.git repositories (default: repos/ beside --instances).",
    ),
) -> None:
    """Cut expert trajectories into step-wise SRL instances and SFT conversations (streaming)."""
    from rich.console import Console

    from swesrl.agent.context import ContextPolicy
    from swesrl.agent.loop import load_agent_config
    from swesrl.training.data import BuildOptions, build_dataset

    if (max_prompt_tokens or max_observation_tokens) and not tokenizer:
        raise UserError("--max-prompt-tokens and --max-observation-tokens need --tokenizer")
    if with_state and not instances:
        raise UserError("--with-state needs --instances (the tasks to replay the trajectories on)")
    agent_config = load_agent_config([*config, f"sandbox.backend={backend}"] if with_state else config)
    policy = ContextPolicy(
        **{**agent_config.context.model_dump(), "kind": "full" if full_history else "srl", "k": context_steps}
    )
    opts = BuildOptions(
        policy=policy,
        tokenizer=_load_tokenizer(tokenizer),
        max_prompt_tokens=max_prompt_tokens,
        max_observation_tokens=max_observation_tokens,
        only_resolved=only_resolved,
        skip_submit=skip_submit,
        max_steps=max_steps,
        dedupe=dedupe,
        instances=_instances_by_id(instances) if instances else None,
        with_state=with_state,
        mirror=(mirror or str(default_mirror(instances))) if with_state else None,
    )
    files = expand_paths([*trajectories, *(more or [])])
    with progress_bars(transient=True) as on_progress:
        stats = build_dataset(files, out, opts, config=agent_config, on_progress=on_progress, workers=workers)
    console = Console()
    console.print(
        f"{stats['trajectories_used']}/{stats['trajectories_read']} trajectories -> {stats['instances']} SRL instances, "
        f"{stats['sft_conversations']} SFT conversations in {out}/ (srl.jsonl, sft.jsonl, stats.json)"
    )
    if with_state:
        r = stats.get("state_replay", {})
        console.print(
            f"states: {sum(r.values())} trajectories replayed; final patch equal to the recorded one: "
            f"{r.get('matches', 0)}, different: {r.get('differs', 0)}, none recorded: {r.get('unknown', 0)}"
        )
    if stats["dropped"]["counts"]:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(stats["dropped"]["counts"].items()))
        console.print(f"dropped: {counts} (details in stats.json)")
    if stats["instances"] == 0:
        raise UserError(f"nothing usable was read from {len(files)} file(s); see {out}/stats.json")


@data_app.command("verify")
def data_verify(
    trajectories: list[str] = typer.Option(
        ..., "--trajectories", "-t", help="Expert trajectory files or folders."
    ),
    instances: str = typer.Option(
        ..., "--instances", "-i", help="Instances file (SWE-bench schema; bundled suites carry test_cmd)."
    ),
    out: str = typer.Option(
        None,
        "--out",
        "-o",
        help="Filtered trajectories (JSONL, this project's format); default: verified.jsonl beside the first input.",
    ),
    backend: str = typer.Option("local", "--backend", help="Sandbox backend: local (bubblewrap) or docker."),
    mirror: str = typer.Option(
        None,
        "--repo-mirror",
        help="Folder of <owner>__<name>.git repositories (default: repos/ beside --instances).",
    ),
    config: list[str] = typer.Option(
        [], "--config", "-c", help="Agent config YAML files or key=value overrides."
    ),
    workers: int = typer.Option(
        1, "--workers", "-w", help="Trajectories replayed at the same time (one sandbox each)."
    ),
) -> None:
    """Replay each expert trajectory in a sandbox, grade its patch, keep those that resolve their task."""
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from swesrl.agent.loop import load_agent_config
    from swesrl.training.data.verify import verify_trajectories

    agent_config = load_agent_config([*config, f"sandbox.backend={backend}"])
    files = expand_paths(trajectories)
    if not files:
        raise UserError("no trajectory files given")
    out_file = Path(out) if out else files[0].parent / "verified.jsonl"
    insts = _instances_by_id(instances)
    with progress_bars(transient=True) as on_progress:
        summary = verify_trajectories(
            files,
            insts,
            out_file,
            agent_config,
            mirror or default_mirror(instances),
            on_progress,
            workers=workers,
        )
    report = out_file.with_suffix(".report.json")
    atomic_write_json(report, summary)
    table = Table("instance", "exit status", "resolved", "note")
    for r in summary["results"]:
        table.add_row(
            r["instance_id"],
            str(r.get("exit_status")),
            "yes" if r["resolved"] else "no",
            r.get("error", "")[:60],
        )
    console = Console()
    console.print(table)
    console.print(
        f"{summary['resolved']}/{summary['verified']} trajectories reproduce a resolving patch -> {out_file} "
        f"(report: {report}); {len(summary['dropped'])} not verified"
    )
    if summary["verified"] == 0:
        raise UserError("no trajectory could be verified (see the report)")


# ---- swesrl train / swesrl export ------------------------------------------------------------

_CONFIG_HELP = "YAML config: a path or a bundled name (srl_tiny.yaml, srl_qwen7b.yaml, ...)."
_OVERRIDE_HELP = "Override a config value, e.g. -c train.learning_rate=1e-6 (repeatable)."


def _print_summary(title: str, summary: dict) -> None:
    """The run's summary table, printed once: by the main process of a multi-process run."""
    from rich.console import Console
    from rich.table import Table

    if not summary.get("main_process", True):
        return
    table = Table(title=title, show_header=False)
    for key, value in summary.items():
        if key == "main_process":
            continue
        if isinstance(value, dict):
            for k in (
                "reward",
                "reward_std",
                "dynamic_sampling/filtered_fraction",
                "format_failure_rate",
                "loss",
            ):
                if k in value:
                    table.add_row(k, f"{value[k]:.4g}")
        elif isinstance(value, list):
            table.add_row(key, f"{len(value)} files")
        else:
            table.add_row(key, str(value))
    Console().print(table)


@train_app.command("srl")
def train_srl_cmd(
    config: str = typer.Option(..., "--config", help=_CONFIG_HELP),
    override: list[str] = typer.Option(None, "--override", "-c", help=_OVERRIDE_HELP),
) -> None:
    """SRL: GRPO on step-wise expert instances, similarity reward, dynamic sampling (TRL GRPOTrainer)."""
    from swesrl.training.progress import metrics_line
    from swesrl.training.srl import load_srl_config, train_srl

    cfg = load_srl_config(config, override)
    with step_bar("SRL", cfg.train.max_steps, metrics_line) as on_step:
        summary = train_srl(cfg, on_step)
    _print_summary("SRL", summary)


@train_app.command("sft")
def train_sft_cmd(
    config: str = typer.Option(..., "--config", help=_CONFIG_HELP),
    override: list[str] = typer.Option(None, "--override", "-c", help=_OVERRIDE_HELP),
) -> None:
    """SFT on sft.jsonl with the loss on assistant turns only (TRL SFTTrainer)."""
    from swesrl.training.progress import metrics_line
    from swesrl.training.sft import load_sft_config, train_sft

    cfg = load_sft_config(config, override)
    with step_bar("SFT", cfg.train.max_steps, metrics_line) as on_step:
        summary = train_sft(cfg, on_step)
    _print_summary("SFT", summary)


@export_app.command("verl")
def export_verl_cmd(
    data: str = typer.Option(..., "--data", help="srl.jsonl from `swesrl data build`."),
    out: str = typer.Option(
        ..., "--out", "-o", help="Output folder: train.parquet, test.parquet, srl_reward.py."
    ),
    val_fraction: float = typer.Option(0.0, "--val-fraction", help="Share of rows for test.parquet."),
    seed: int = typer.Option(0, "--seed", help="Shuffle seed for the split."),
    compare: str = typer.Option(
        "text",
        "--compare",
        help="Reward comparison: text (paper), call, canonical, execution or mixed (data built --with-state).",
    ),
    instances: str = typer.Option(
        None, "--instances", help="execution / mixed: the instances file the reward module uses."
    ),
    mirror: str = typer.Option(
        None,
        "--repo-mirror",
        help="execution / mixed: repositories folder (default: repos/ beside --instances).",
    ),
    text_weight: float = typer.Option(0.5, "--text-weight", help="mixed: weight of the text similarity."),
) -> None:
    """Export SRL data as verl parquet plus a `compute_score` reward module."""
    from rich.console import Console

    from swesrl.training.export import export_verl

    if compare not in ("text", "call", "canonical", "execution", "mixed"):
        raise UserError(f"--compare must be text, call, canonical, execution or mixed, got {compare!r}")
    execution = {k: v for k, v in (("instances", instances), ("mirror", mirror)) if v}
    summary = export_verl(
        data,
        out,
        val_fraction=val_fraction,
        seed=seed,
        compare=compare,
        execution=execution,
        text_weight=text_weight,
    )
    Console().print(
        f"wrote {summary.get('train', 0)} train / {summary.get('test', 0)} test rows and srl_reward.py to {out}\n"
        f"verl: data.train_files={out}/train.parquet custom_reward_function.path={out}/srl_reward.py "
        "custom_reward_function.name=compute_score"
    )


@train_app.command("rlvr")
def train_rlvr_cmd(
    config: str = typer.Option(..., "--config", help=_CONFIG_HELP),
    override: list[str] = typer.Option(None, "--override", "-c", help=_OVERRIDE_HELP),
) -> None:
    """RLVR: GRPO on whole agent episodes in sandboxes, reward = resolved (1/0) by the harness (TRL GRPOTrainer)."""
    from swesrl.training.progress import metrics_line
    from swesrl.training.rlvr import load_rlvr_config, train_rlvr

    cfg = load_rlvr_config(config, override)
    with step_bar("RLVR", cfg.train.max_steps, metrics_line) as on_step:
        summary = train_rlvr(cfg, on_step)
    _print_summary("RLVR", summary)


@train_app.command("pipeline")
def train_pipeline_cmd(
    srl_config: str = typer.Option("srl_tiny.yaml", "--srl-config", help="SRL stage config."),
    rlvr_config: str = typer.Option("rlvr_tiny.yaml", "--rlvr-config", help="RLVR stage config."),
    override: list[str] = typer.Option(
        None, "--override", "-c", help="Stage override: -c srl.train.max_steps=10 / -c rlvr.data.split=train."
    ),
) -> None:
    """SRL then RLVR from SRL's final model; each stage resumes, a finished stage is skipped."""
    from swesrl.training.pipeline import run_pipeline
    from swesrl.training.rlvr import load_rlvr_config
    from swesrl.training.srl import load_srl_config

    by_stage: dict[str, list[str]] = {"srl": [], "rlvr": []}
    for o in override or []:
        stage, _, rest = o.partition(".")
        if stage not in by_stage or not rest:
            raise UserError(f"pipeline overrides start with srl. or rlvr., got: {o!r}")
        by_stage[stage].append(rest)
    with progress_bars() as on_progress:
        result = run_pipeline(
            load_srl_config(srl_config, by_stage["srl"]),
            load_rlvr_config(rlvr_config, by_stage["rlvr"]),
            on_progress=on_progress,
        )
    _print_summary("SRL", result["srl"])
    _print_summary("RLVR", result["rlvr"])
