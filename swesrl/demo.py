"""`swesrl demo`: the whole method on a CPU, offline, with a tiny model, in one command.

A script of stages (`swesrl.training.pipeline.Pipeline`: each writes its outputs under `--out` and its
marker `stages/<name>.json` last; a rerun with the same `--out` skips finished stages and resumes
unfinished agent runs and evaluations): 1. the bundled task suite (train tasks; held-out tasks of an
unseen bug family or an unseen repository); 2. expert trajectories through the agent loop in sandboxes
(`tasks.expert.ShortExpert`: find, read, edit, submit; on `expert_recovery` of the train tasks it first
makes a wrong edit, reads the editor's refusal and repairs it; held-out tasks' trajectories only make
the held-out step instances); 3. step-wise SRL instances (the paper's context: task + last 2 steps; a
wrong edit's row gets the right edit as its target) and SFT rows (same prompt, the expert's reply);
4. the starting model (`swesrl/checkpoints/tiny-demo`, made by `scripts/pretrain_tiny.py` on 30 other
suites, or a fresh tiny model); 5. evaluation (`training/evaluate.py`: resolve rate and step similarity
on held-out tasks), SFT warm-up (TRL's SFTTrainer), evaluation, SRL (GRPO, similarity reward, dynamic
sampling), evaluation; 6. `report.md`, `report.json` and plots (`training/report.py`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

from pydantic import Field

from swesrl.agent.context import ContextPolicy
from swesrl.agent.loop import load_agent_config
from swesrl.config import StrictModel, load_config
from swesrl.core.instances import load_instances
from swesrl.tasks import build_suite
from swesrl.tasks.expert import ScriptedExpert, ShortExpert, recovers, relabel_mistakes, run_experts
from swesrl.tasks.splits import pick_tasks, split_counts
from swesrl.training.data import BuildOptions, build_dataset
from swesrl.training.evaluate import evaluate_policy
from swesrl.training.pipeline import Pipeline
from swesrl.training.progress import step_progress
from swesrl.training.report import write_report
from swesrl.training.sft import SFTConfig, step_rows, train_sft
from swesrl.training.srl import DynamicSamplingExhausted, SRLConfig, train_srl
from swesrl.training.tiny import starting_model
from swesrl.utils import OnProgress, UserError, choose_omp_wait_policy, iter_jsonl, write_jsonl

log = logging.getLogger(__name__)

REFERENCE_MINUTES = 15.0
"""Budgets in demo.yaml are for this many minutes; --minutes scales them."""


class SuiteConfig(StrictModel):
    n: int = 100
    """Tasks generated; always all of them, so the splits match the checkpoint's."""
    seed: int = 0
    """Suite seed (the shipped checkpoint was trained on other suites only)."""
    train_tasks: int = 68
    """Train tasks given expert trajectories (scaled by --minutes)."""
    test_tasks: int = 29
    """Held-out tasks evaluated (scaled by --minutes)."""


class DemoModelConfig(StrictModel):
    checkpoint: str = "shipped"
    """`shipped` (swesrl/checkpoints/tiny-demo), `scratch` (a fresh tiny model), or a model folder."""


class DemoSFTConfig(StrictModel):
    steps: int = 60
    """Optimizer steps (scaled by --minutes), each on `batch_size` rows drawn at random."""
    batch_size: int = 8
    learning_rate: float = 3e-4
    """With a 10% linear warm-up multiplied by a cosine decay (`train.lr_scheduler_type: warmup_cosine`)."""


class DemoSRLConfig(StrictModel):
    steps: int = 16
    """GRPO steps (scaled by --minutes)."""
    prompts_per_step: int = 4
    num_generations: int = 4
    learning_rate: float = 1e-4
    """Chosen by `bench/srl_learning.py` (train-row reward): 5e-5 does not move the policy, 3e-4 overshoots."""
    temperature: float = 1.0
    max_completion_length: int = 224


class DemoConfig(StrictModel):
    suite: SuiteConfig = SuiteConfig()
    model: DemoModelConfig = DemoModelConfig()
    expert: Literal["short", "scripted"] = "short"
    """`short`: the 4-step `ShortExpert`, sized for a tiny model; `scripted`: `ScriptedExpert` (varied
    ~10-step trajectories, for real models)."""
    expert_recovery: float = Field(0.3, ge=0, le=1)
    """Share of the train tasks whose short expert first tries a wrong edit (`old_str` = the fixed
    code, which the file does not contain), reads the error and then makes the right edit. The wrong
    edit is never a training target (its row is relabelled with the right edit)."""
    agent: str = "agent_tiny.yaml"
    """Agent config layered over agent.yaml (terse prompt, SRL context, greedy short replies)."""
    workers: int = 4
    """Parallel sandboxes in agent runs and evaluations."""
    sft: DemoSFTConfig = DemoSFTConfig()
    srl: DemoSRLConfig = DemoSRLConfig()


def scaled(cfg: DemoConfig, minutes: float) -> DemoConfig:
    """Budgets for `minutes`: the demo.yaml values times minutes/15, with small floors, never above them."""
    f = minutes / REFERENCE_MINUTES

    def scale(value: int, floor: int) -> int:
        return max(min(floor, value), min(value, round(value * f)))

    c = cfg.model_copy(deep=True)
    c.suite.train_tasks, c.suite.test_tasks = scale(cfg.suite.train_tasks, 8), scale(cfg.suite.test_tasks, 8)
    c.sft.steps, c.srl.steps = scale(cfg.sft.steps, 2), scale(cfg.srl.steps, 1)
    return c


def sft_config(s: DemoSFTConfig, base: Path, data: Path, out_dir: Path, seed: int) -> SFTConfig:
    return SFTConfig.model_validate({
        "model": {"path": str(base), "dtype": "float32"},
        "data": {"path": str(data), "order": "draws"},
        "train": {"learning_rate": s.learning_rate, "global_batch_size": s.batch_size, "micro_batch_size": s.batch_size,
                  "lr_scheduler_type": "warmup_cosine", "warmup_ratio": 0.1, "max_steps": s.steps, "max_length": None,
                  "seed": seed},
        "output": {"dir": str(out_dir), "save_steps": s.steps + 1, "logging_steps": 1, "report_to": ["none"]},
    })  # fmt: skip


def srl_or_skip(s: DemoSRLConfig, base: str, data: Path, out_dir: Path, seed: int, on_progress=None) -> dict:
    """SRL on `data/srl.jsonl`; a policy whose rollouts never differ in reward (e.g. all malformed) gives
    GRPO nothing: then the stage says so and its model is `base`."""
    cfg = SRLConfig.model_validate({
        "model": {"path": base, "dtype": "float32"},
        "data": {"path": str(data / "srl.jsonl")},
        "dynamic_sampling": {"enabled": True, "max_rounds": 3, "on_exhausted": "fill"},
        "train": {"prompts_per_step": s.prompts_per_step, "num_generations": s.num_generations,
                  "micro_batch_size": s.prompts_per_step * s.num_generations, "learning_rate": s.learning_rate,
                  "max_steps": s.steps, "temperature": s.temperature,
                  "max_completion_length": s.max_completion_length, "seed": seed},
        "output": {"dir": str(out_dir), "save_steps": max(1, s.steps // 2), "save_total_limit": 1,
                   "logging_steps": 1, "report_to": ["none"]},
    })  # fmt: skip
    try:
        return train_srl(cfg, step_progress(on_progress, "SRL"))
    except DynamicSamplingExhausted as e:
        log.warning("SRL skipped: %s", e)
        return {"global_step": 0, "final_model": base, "skipped": str(e)}


def prepare(
    out: Path, cfg: DemoConfig, on_progress: OnProgress | None = None, exclude_repos: frozenset = frozenset()
) -> SimpleNamespace:
    """Stages 1-3 in `out` (train tasks of `exclude_repos` left out); what later stages need, by name."""
    pipe = Pipeline(out / "stages")
    suite_dir, mirror = (out / "suite").resolve(), (out / "suite" / "repos").resolve()
    agent = load_agent_config([cfg.agent])

    def pick(insts: list[dict]) -> tuple[list[dict], list[dict]]:
        train, test = pick_tasks(insts, cfg.suite.train_tasks, cfg.suite.test_tasks, cfg.suite.seed)
        return [i for i in train if i["repo"] not in exclude_repos], test

    # 1. the task suite, and the tasks this budget uses
    def suite() -> dict:
        path = build_suite(suite_dir, n=cfg.suite.n, seed=cfg.suite.seed, on_progress=on_progress)
        insts = load_instances(path)
        return {"instances": str(path), **split_counts(insts, *pick(insts))}

    suite_result = pipe.stage("suite", suite)
    instances = {i["instance_id"]: dict(i) for i in load_instances(suite_dir / "instances.jsonl")}
    train, test = pick(list(instances.values()))
    recovering = {i for i, x in instances.items() if recovers(x, cfg.expert_recovery, cfg.suite.seed)}

    # 2. expert trajectories (full history: the expert reads its own earlier steps)
    def expert_for(instance: dict):
        if cfg.expert == "scripted":
            return ScriptedExpert(instance, seed=cfg.suite.seed, think_tags=True)
        return ShortExpert(instance, mirror, recovery=instance["instance_id"] in recovering)

    expert_agent = agent.model_copy(update={"context": ContextPolicy(kind="full")})
    expert = pipe.stage("expert", lambda: {
        name: run_experts(insts, expert_for, expert_agent, out / "expert" / name, mirror, cfg.workers,
                          f"expert trajectories ({name})", on_progress)
        for name, insts in (("train", train), ("test", test))
    })  # fmt: skip

    # 3. step-wise SRL instances and SFT rows
    def data() -> dict:
        stats = {}
        for name in ("train", "test"):
            d = out / "data" / name
            opts = BuildOptions(policy=ContextPolicy(kind="srl", k=2), instances=instances)
            s = build_dataset([out / "expert" / f"{name}.jsonl"], d, opts, config=agent)
            relabelled = relabel_mistakes(d / "srl.jsonl", recovering)
            n_rows = write_jsonl(d / "sft_steps.jsonl", step_rows(iter_jsonl(d / "srl.jsonl")))
            stats[name] = {"srl_instances": s["instances"], "sft_conversations": s["sft_conversations"],
                           "sft_steps": n_rows, "recovery_trajectories": relabelled}  # fmt: skip
        return stats

    data_result = pipe.stage("data", data)
    test_rows = list(iter_jsonl(out / "data" / "test" / "srl.jsonl"))
    return SimpleNamespace(**locals())


def run_demo(out: str | Path, minutes: float = REFERENCE_MINUTES, seed: int = 0, overrides: list[str] | None = None,
             on_progress: OnProgress | None = None) -> dict:  # fmt: skip
    """Run (or resume) the demo in `out`; returns the report dict."""
    if minutes <= 0:
        raise UserError(f"--minutes must be positive, got {minutes}")
    choose_omp_wait_policy()  # before torch loads
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    cfg = scaled(load_config(DemoConfig, ["demo.yaml", *(overrides or [])]), minutes)
    settings = {"minutes": minutes, "seed": seed, "config": cfg.model_dump()}
    Pipeline(out / "stages").settings(settings, "demo run")
    t0 = time.monotonic()
    import torch

    torch.manual_seed(seed)
    p = prepare(out, cfg, on_progress)
    pipe, train_steps = p.pipe, out / "data" / "train"

    # 4. the starting policy
    rows = iter_jsonl(train_steps / "sft_steps.jsonl")  # a fresh model's tokenizer is trained on them
    texts = (json.dumps({"messages": r["prompt"] + r["completion"]}) for r in rows)
    model = pipe.stage(
        "model", lambda: starting_model(out / "model" / "base", cfg.model.checkpoint, texts, seed)
    )

    # 5. evaluate, SFT warm-up, evaluate, SRL, evaluate
    def evaluation(name: str, model_dir: str) -> dict:
        return pipe.stage(f"eval_{name}", lambda: evaluate_policy(
            name, Path(model_dir), p.test, p.test_rows, p.agent, out / "eval" / name, p.mirror, cfg.workers,
            on_progress
        ))  # fmt: skip

    evals = {"base": evaluation("base", model["path"])}
    sft_cfg = sft_config(cfg.sft, Path(model["path"]), train_steps / "sft_steps.jsonl", out / "sft", seed)
    sft = pipe.stage("sft", lambda: train_sft(sft_cfg, step_progress(on_progress, "SFT")))
    evals["sft"] = evaluation("sft", sft["final_model"])
    srl_result = pipe.stage(
        "srl", lambda: srl_or_skip(cfg.srl, sft["final_model"], train_steps, out / "srl", seed, on_progress)
    )
    evals["srl"] = evaluation("srl", srl_result["final_model"])

    # 6. the report
    report = {**settings, "suite": p.suite_result,
              "expert": p.expert, "data": p.data_result, "model": model, "stage_seconds": pipe.seconds,
              "run_seconds_this_invocation": round(time.monotonic() - t0, 1)}  # fmt: skip
    return write_report(out, report, sft, srl_result, evals)
