"""`swesrl eval` and `swesrl oracle`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from swesrl.core.instances import default_mirror, load_instances, read_instances, select
from swesrl.utils import Interrupted, UserError, progress_bars


@contextmanager
def _interrupt_line(console) -> Iterator[None]:
    """Ctrl-C in a resumable run: one line saying how far it got, and exit status 130."""

    try:
        yield
    except Interrupted as e:
        console.print(
            f"interrupted: {e.done} of {e.total} graded; rerun the same command to resume",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None


def eval_cmd(
    instances: Path = typer.Option(..., "--instances", "-i", help="Instances file (JSON, JSONL or parquet)."),
    predictions: Path = typer.Option(
        None, "--predictions", "-p", help="SWE-bench predictions (JSONL/JSON: instance_id, model_patch)."
    ),
    out: Path = typer.Option(Path("runs"), "--out", "-o", help="Output folder; the run lands in OUT/RUN_ID."),
    backend: str = typer.Option(
        "local", "--backend", "-b", help="Sandbox backend: local (bubblewrap) or docker."
    ),
    workers: int = typer.Option(1, "--workers", "-w", help="Instances evaluated in parallel."),
    timeout: float = typer.Option(1800.0, "--timeout", help="Seconds the tests of one instance may run."),
    run_id: str = typer.Option(None, "--run-id", help="Run name (default: the predictions file's stem)."),
    repo_mirror: Path = typer.Option(
        None,
        "--repo-mirror",
        help="Folder of <owner>__<name>.git repositories (default: repos/ beside --instances).",
    ),
    namespace: str = typer.Option(
        "swebench", "--namespace", help="Docker Hub namespace of the SWE-bench images."
    ),
    gold: bool = typer.Option(
        False, "--gold", help="Validate the dataset: gold patches must resolve, empty patches must not."
    ),
    ids: str = typer.Option(None, "--ids", help="Comma-separated instance ids to evaluate (default: all)."),
    retry_errors: bool = typer.Option(
        False, "--retry-errors", help="Rerun instances whose report says error."
    ),
    unsafe: bool = typer.Option(
        False,
        "--unsafe-no-sandbox",
        help="Where bubblewrap cannot isolate tests (local backend), run them unsandboxed: no isolation.",
    ),
    cache_level: str = typer.Option(
        "env",
        "--cache-level",
        help="Docker: SWE-bench image levels kept after grading: none, base, env (instance images this "
        "run pulled are removed after each instance), instance (keep all).",
    ),
    clean: bool = typer.Option(
        False,
        "--clean",
        help="Docker: also remove images above --cache-level that were there before the run.",
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print each instance's eval script (classic instances: SWE-bench's official one) and run nothing.",
    ),
) -> None:
    """Evaluate patches SWE-bench style: apply, run FAIL_TO_PASS / PASS_TO_PASS tests, grade, report."""
    from rich.console import Console
    from rich.table import Table

    from swesrl.harness import evaluate, load_predictions, validate_dataset

    console = Console(stderr=True)
    if backend not in ("local", "docker"):
        raise UserError(f"--backend must be local or docker, got {backend!r}")
    if not gold and not dry_run and predictions is None:
        raise UserError("give --predictions FILE, or --gold to validate the dataset")
    insts, problems = read_instances(instances, lenient=True)
    if ids:
        wanted = [x.strip() for x in ids.split(",") if x.strip()]
        known = {i["instance_id"] for i in insts}
        problems += [f"--ids: unknown instance id {x!r}; skipped" for x in wanted if x not in known]
        insts = [i for i in insts if i["instance_id"] in set(wanted)]
        if not insts:
            raise UserError("--ids: none of the given ids is in the instances file")
    if dry_run:
        for p in problems:
            console.print(f"[yellow]warning:[/] {p}", highlight=False, soft_wrap=True)
        _print_eval_scripts(insts, namespace, console)
        return
    mirror = repo_mirror if repo_mirror is not None else default_mirror(instances)
    kw: dict[str, Any] = dict(
        backend=backend, workers=workers, timeout=timeout, mirror=mirror, namespace=namespace,
        retry_errors=retry_errors,
    )  # fmt: skip
    if unsafe:
        from swesrl.envs.base import SandboxConfig

        kw["config"] = SandboxConfig(unsafe_no_sandbox=True)
    from swesrl.envs.images import CACHE_LEVELS

    if cache_level not in CACHE_LEVELS:
        raise UserError(f"--cache-level must be one of {', '.join(CACHE_LEVELS)}, got {cache_level!r}")
    cache = _ImageCache(insts, namespace, cache_level, clean) if backend == "docker" else None
    for p in problems:
        console.print(f"[yellow]warning:[/] {p}", highlight=False, soft_wrap=True)
    if gold:
        with _interrupt_line(console), progress_bars() as on_progress:
            try:
                res = validate_dataset(insts, out, run_id or "validate", on_progress=on_progress, **kw)
            finally:  # the empty-patch run needs the images the gold run used: removed at the end
                if cache is not None:
                    cache.release(i["instance_id"] for i in insts)
        t = Table(title=f"dataset validation ({instances})")
        t.add_column("instances")
        t.add_column("valid")
        t.add_column("broken")
        t.add_row(str(res["total_instances"]), str(res["valid_instances"]), str(res["broken_instances"]))
        console.print(t)
        for iid, why in res["broken"].items():
            console.print(f"[red]broken[/] {iid}: {'; '.join(why)}", highlight=False, soft_wrap=True)
        _print_removed(console, cache)
        console.print(
            f"validation report: {Path(out) / ((run_id or 'validate') + '.validation.json')}", soft_wrap=True
        )
        return
    preds, pproblems = load_predictions(predictions)
    for p in pproblems:
        console.print(f"[yellow]warning:[/] {p}", highlight=False, soft_wrap=True)
    if not preds:
        raise UserError(f"{predictions}: no usable predictions")
    rid = run_id or predictions.stem
    if cache is not None:
        kw["on_result"] = lambda rep: cache.release([rep["instance_id"]])
    with _interrupt_line(console), progress_bars() as on_progress:
        summary = evaluate(insts, preds, out, rid, on_progress=on_progress, **kw)
    for p in summary["input_problems"]:
        console.print(f"[yellow]warning:[/] {p}", highlight=False, soft_wrap=True)
    t = Table(title=f"swesrl eval {rid}")
    for col in ("total", "submitted", "completed", "resolved", "unresolved", "empty patch", "error"):
        t.add_column(col, justify="right")
    t.add_row(
        *(
            str(summary[k])
            for k in (
                "total_instances",
                "submitted_instances",
                "completed_instances",
                "resolved_instances",
                "unresolved_instances",
                "empty_patch_instances",
                "error_instances",
            )
        )
    )
    console.print(t)
    for iid, why in summary["errors"].items():
        console.print(f"[red]error[/] {iid}: {why}", highlight=False, soft_wrap=True)
    _print_removed(console, cache)
    console.print(f"summary: {Path(out) / rid / 'summary.json'}", soft_wrap=True)


def _print_removed(console, cache) -> None:
    if cache is not None and cache.removed:
        console.print(
            f"removed {len(cache.removed)} image(s) above --cache-level {cache.level}: {' '.join(cache.removed)}",
            highlight=False,
            soft_wrap=True,
        )


class _ImageCache:
    """SWE-bench's cache policy (`swesrl.envs.images`) for the images of one `swesrl eval` run."""

    def __init__(self, insts: list[dict[str, Any]], namespace: str, cache_level: str, clean: bool):
        from swesrl.envs.docker_env import docker_client
        from swesrl.envs.images import local_images
        from swesrl.harness.spec import make_eval_spec

        self.client = docker_client()
        self.before = local_images(self.client)
        self.level, self.clean = cache_level, clean
        self.images = {i["instance_id"]: make_eval_spec(i, namespace).image for i in insts}  # type: ignore[arg-type]
        self.removed: list[str] = []

    def release(self, ids) -> None:
        from swesrl.envs.images import normalise, remove_image, should_remove

        for iid in ids:
            image = self.images.pop(iid, None)
            if image and image not in self.images.values():  # no other instance of the run needs it
                name = normalise(image)
                if should_remove(name, self.level, name in self.before, self.clean) and remove_image(
                    self.client, name
                ):
                    self.removed.append(name)


def _print_eval_scripts(insts: list[dict[str, Any]], namespace: str, console) -> None:
    """`eval --dry-run`: each instance's eval script on stdout, after `#` lines naming the instance,
    its kind, image, log parser and eval type; exit status 1 if some instance cannot be evaluated."""
    import sys

    from swesrl.harness.spec import make_eval_spec

    kinds = {
        "classic": "SWE-bench's official eval script (swebench 4.1 specs)",
        "eval_script": "the instance's own eval_script",
        "test_cmd": "the harness's script around the instance's test_cmd",
    }
    bad = 0
    for inst in insts:
        spec = make_eval_spec(inst, namespace)  # type: ignore[arg-type]
        out = [
            f"# instance: {spec.instance_id} ({spec.repo} {spec.version})".rstrip(),
            f"# kind: {spec.kind}: {kinds[spec.kind]}",
            f"# image: {spec.image or '(the backend default)'}",
            f"# log parser: {spec.log_parser}; eval type: {spec.eval_type}",
        ]
        if spec.kind != "test_cmd" and spec.test_files:
            out.append(
                "# (the harness first resets the files test_patch touches, removing those base_commit lacks)"
            )
        if spec.problems:
            bad += 1
            out.append(f"# cannot be evaluated: {'; '.join(spec.problems)}")
            console.print(
                f"[red]error[/] {spec.instance_id}: {'; '.join(spec.problems)}",
                highlight=False,
                soft_wrap=True,
            )
        sys.stdout.write("\n".join(out) + "\n" + (spec.eval_script or "").rstrip("\n") + "\n\n")
    sys.stdout.flush()
    if bad:
        raise typer.Exit(1)


def oracle_cmd(
    instances: Path = typer.Option(..., "--instances", "-i", help="Instances file (JSON, JSONL or parquet)."),
    model: str = typer.Option(..., "--model", "-m", help="Model spec: hf:PATH, openai:URL#MODEL, ..."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for predictions.jsonl and raw outputs."),
    repo_mirror: Path = typer.Option(
        None,
        "--repo-mirror",
        help="Folder of <owner>__<name>.git repositories (default: repos/ beside --instances).",
    ),
    ids: str = typer.Option(None, "--ids", help="Comma-separated instance ids (default: all)."),
    max_new_tokens: int = typer.Option(2048, "--max-new-tokens", help="Generation budget per instance."),
    temperature: float = typer.Option(0.0, "--temperature", help="Sampling temperature (0: greedy)."),
    config: list[str] = typer.Option(
        [],
        "--config",
        "-c",
        help="YAML config(s) or key=value overrides for the oracle prompt (OracleConfig).",
    ),
) -> None:
    """The paper's "oracle file edit" setting: issue + gold-touched files -> model edits -> predictions."""
    from rich.console import Console

    from swesrl.harness.oracle import load_oracle_config, run_oracle

    cfg = load_oracle_config(config or [])
    insts = load_instances(instances)
    if ids:
        insts = select(insts, [x.strip() for x in ids.split(",") if x.strip()])
    mirror = repo_mirror if repo_mirror is not None else default_mirror(instances)
    from swesrl.agent.models import get_model

    m = get_model(model)
    with progress_bars() as on_progress:
        res = run_oracle(
            insts,
            m,
            out,
            mirror,
            cfg,
            model_name=model,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            on_progress=on_progress,
        )
    Console(stderr=True).print(
        f"{res['written']} prediction(s) ({res['skipped']} already there, {res['empty']} empty, "
        f"{res['parse_problems']} with parse problems) -> {res['predictions']}",
        highlight=False,
        soft_wrap=True,
    )


COMMANDS: dict = {"eval": eval_cmd, "oracle": oracle_cmd}
