"""`swesrl demo`: the whole method on a CPU, offline, with a tiny model, in one command.

Stages (each writes its outputs under `--out` and a marker `stages/<name>.json` last; a rerun with
the same `--out` skips finished stages and resumes unfinished agent runs and evaluations):

1. `suite`: the bundled task suite (`swesrl.tasks.build_suite`): train tasks and held-out tasks
   (a held-out bug family never seen in training, or a held-out repository with seen families).
2. `expert`: expert trajectories through the real agent loop in local sandboxes. The demo's
   expert is `ShortExpert` (find the function, read it, edit it, submit), written for what a tiny
   model can imitate; on a share of the train tasks (`expert_recovery`) it first tries a wrong
   edit, reads the editor's refusal and repairs it, as real expert trajectories do; held-out
   tasks get expert trajectories too (never a wrong edit), only to make the held-out step
   instances that measure step similarity (never trained on).
3. `data`: step-wise SRL instances (`swesrl.training.data.build_dataset`, the paper's context: task
   + last 2 steps) and step-wise SFT conversations (the same prompt + the expert's turn).
4. `model`: the starting checkpoint: the one shipped in `swesrl/checkpoints/tiny-demo` (made by
   `scripts/pretrain_tiny.py` on 30 other suites only: this suite is new to it) or a fresh tiny model.
5. `eval_base`, `sft`, `eval_sft`, `srl`, `eval_srl`: a short SFT warm-up, then SRL (GRPO with the
   similarity reward and dynamic sampling), with an evaluation before and after each: the agent
   loop on held-out tasks in sandboxes, graded by the harness (resolve rate), and the mean
   `srl_reward` of the policy's greedy action against the expert's on held-out step instances.
6. `report`: `report.md`, `report.json` and PNG plots.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Literal

import typer
from pydantic import Field

from swesrl.config import StrictModel, load_config
from swesrl.utils import (
    UserError,
    atomic_write_json,
    atomic_write_text,
    choose_omp_wait_policy,
    iter_jsonl,
    make_progress,
    write_jsonl,
)

log = logging.getLogger(__name__)

SHIPPED_CHECKPOINT = Path(__file__).parent / "checkpoints" / "tiny-demo"
REFERENCE_MINUTES = 15.0
"""Budgets in demo.yaml are for this many minutes; --minutes scales them."""
GROUPS = ("heldout_repo", "heldout_family")
"""Held-out tasks: an unseen repository with a bug family seen in training, or an unseen bug family."""


class SuiteConfig(StrictModel):
    n: int = 100
    """Tasks generated; always all of them, so the splits match the checkpoint's."""
    seed: int = 0
    """Suite seed (the shipped checkpoint was trained on this suite's train split only)."""
    train_tasks: int = 68
    """Train tasks given expert trajectories (scaled by --minutes)."""
    test_tasks: int = 29
    """Held-out tasks evaluated (scaled by --minutes)."""


class DemoModelConfig(StrictModel):
    checkpoint: str = "shipped"
    """`shipped` (swesrl/checkpoints/tiny-demo), `scratch` (a fresh tiny model), or a model folder."""


class DemoSFTConfig(StrictModel):
    steps: int = 60
    """Optimizer steps (scaled by --minutes)."""
    batch_size: int = 8
    learning_rate: float = 3e-4


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
    """`short`: the demo's 4-step expert (find, read, edit, submit), sized for a tiny model; `scripted`:
    `swesrl.tasks.expert.ScriptedExpert` (varied ~10-step trajectories, for real models)."""
    expert_recovery: float = Field(0.3, ge=0, le=1)
    """Share of the train tasks whose short expert first tries a wrong edit (`old_str` = the fixed
    code, which the file does not contain), reads the error and then makes the right edit: expert
    data with a recovery step, as real trajectories have. The wrong edit is never a training target
    (its row is relabelled with the right edit); held-out experts never make it."""
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
    c.suite.train_tasks = scale(cfg.suite.train_tasks, 8)
    c.suite.test_tasks = scale(cfg.suite.test_tasks, 8)
    c.sft.steps = scale(cfg.sft.steps, 2)
    c.srl.steps = scale(cfg.srl.steps, 1)
    return c


# ---------------------------------------------------------------- the expert


def _hunk_edit(patch: str, file_text: str) -> tuple[str, str, str]:
    """(path, old_str, new_str) of a one-hunk patch; old_str is widened with context until unique."""
    path = re.search(r"^--- a/(\S+)", patch, re.M).group(1)
    body = patch.split("\n@@", 1)[1].split("\n", 1)[1].splitlines()
    body = [line for line in body if not line.startswith("\\")]
    changed = [i for i, line in enumerate(body) if line[:1] in "+-"]
    lo, hi = changed[0], changed[-1]

    def sides(lo: int, hi: int) -> tuple[str, str]:
        span = body[lo : hi + 1]
        old = "\n".join(line[1:] for line in span if not line.startswith("+"))
        new = "\n".join(line[1:] for line in span if not line.startswith("-"))
        return old, new

    old, new = sides(lo, hi)
    while (not old.strip() or file_text.count(old) != 1) and (lo > 0 or hi < len(body) - 1):
        if lo > 0:
            lo -= 1
        elif hi < len(body) - 1:
            hi += 1
        old, new = sides(lo, hi)
        if file_text.count(old) == 1 and old.strip():
            break
        if hi < len(body) - 1:
            hi += 1
            old, new = sides(lo, hi)
    return path, old, new


RECOVERY_THOUGHT = (
    "The edit failed: `old_str` must be copied from the file as printed. Fix the bug in `{name}`."
)
MISTAKE_STEP = 2
"""The step of a recovery trajectory that is the wrong edit (0-based; the right one follows)."""


def expert_turns(instance: dict, file_text: str, recovery: bool = False) -> list[str]:
    """The expert's replies: find the function named in the issue, read it, fix it, submit.

    `recovery`: the first edit uses the fixed code as `old_str` (not in the file, so the editor
    refuses it), then the expert makes the right edit: a trajectory with an error and its repair.
    Nothing changes when the fixed code does occur in the file (the wrong edit would apply)."""
    from swesrl.core.actions import format_action
    from swesrl.training.data.steps import assistant_turn

    m = re.search(r"from [\w.]+ import (\w+)", instance["problem_statement"])
    if not m:
        raise UserError(f"{instance['instance_id']}: the issue names no function to import")
    name = m.group(1)
    path, old, new = _hunk_edit(instance["patch"], file_text)
    full = f"/testbed/{path}"
    edit = format_action(
        "str_replace_editor", {"command": "str_replace", "path": full, "old_str": old, "new_str": new}
    )
    fix = [assistant_turn(f"Fix the bug in `{name}`.", edit)]
    if recovery and new.strip() and new not in file_text:
        wrong = {"command": "str_replace", "path": full, "old_str": new, "new_str": new}
        fix = [
            assistant_turn(f"Fix the bug in `{name}`.", format_action("str_replace_editor", wrong)),
            assistant_turn(RECOVERY_THOUGHT.format(name=name), edit),
        ]
    return [
        assistant_turn(
            f"The issue is about `{name}`. Find where it is defined.",
            format_action("bash", {"command": f'grep -rn "def {name}(" /testbed'}),
        ),
        assistant_turn(
            f"`{name}` is in {full}. Read it.",
            format_action("bash", {"command": f'grep -n -A 10 "def {name}(" {full}'}),
        ),
        *fix,
        assistant_turn("The fix is in place. Submit.", format_action("submit")),
    ]


class ShortExpert:
    """A scripted expert (Model protocol) for one instance, using its gold patch: four steps (five
    with `recovery`: a refused edit, then the right one)."""

    def __init__(self, instance: dict, mirror: Path, recovery: bool = False):
        from swesrl.core.instances import repo_source

        self.name = "short-expert"
        patch_path = re.search(r"^--- a/(\S+)", instance["patch"], re.M).group(1)
        src = repo_source(instance, mirror)
        text = subprocess.run(
            ["git", "-C", str(src), "show", f"{instance['base_commit']}:{patch_path}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        self.turns = expert_turns(instance, text, recovery)

    def generate(self, messages: list[dict], n: int = 1, **sampling: Any) -> list[str]:
        k = sum(m["role"] == "assistant" for m in messages)
        return [self.turns[min(k, len(self.turns) - 1)]] * n


# ---------------------------------------------------------------- stages


class Demo:
    def __init__(self, out: Path, cfg: DemoConfig, minutes: float, seed: int):
        self.out, self.cfg, self.minutes, self.seed = out, cfg, minutes, seed
        self.stages = out / "stages"
        self.timings: dict[str, float] = {}

    # -- bookkeeping

    def done(self, name: str) -> dict | None:
        p = self.stages / f"{name}.json"
        return json.loads(p.read_text()) if p.is_file() else None

    def stage(self, name: str, fn: Callable[[], dict]) -> dict:
        prev = self.done(name)
        if prev is not None:
            log.info("[bold]%s[/]: done earlier, skipped", name, extra={"markup": True})
            self.timings[name] = prev.get("_seconds", 0.0)
            return prev
        log.info("[bold cyan]stage %s[/]", name, extra={"markup": True})
        t0 = time.monotonic()
        result = fn()
        result["_seconds"] = round(time.monotonic() - t0, 1)
        self.timings[name] = result["_seconds"]
        atomic_write_json(self.stages / f"{name}.json", result)
        log.info("%s: finished in %.0fs", name, result["_seconds"])
        return result

    @property
    def suite_dir(self) -> Path:
        return self.out / "suite"

    @property
    def mirror(self) -> Path:
        return self.suite_dir / "repos"

    def agent_config(self, **update: Any):
        from swesrl.agent.loop import load_agent_config

        c = load_agent_config([self.cfg.agent])
        return c.model_copy(update=update) if update else c

    def instances(self) -> dict[str, dict]:
        from swesrl.core.instances import load_instances

        return {i["instance_id"]: dict(i) for i in load_instances(self.suite_dir / "instances.jsonl")}

    def split(self) -> tuple[list[dict], list[dict]]:
        """(train tasks, held-out tasks) for this budget; the same subsets on every rerun."""
        insts = sorted(self.instances().values(), key=lambda i: i["instance_id"])
        train = [i for i in insts if i["split"] == "train"]
        random.Random(self.cfg.suite.seed).shuffle(train)
        by_group = {g: [i for i in insts if i["split"] == "test" and group_of(i) == g] for g in GROUPS}
        test: list[dict] = []
        while len(test) < self.cfg.suite.test_tasks and any(by_group.values()):
            for g in GROUPS:
                if by_group[g] and len(test) < self.cfg.suite.test_tasks:
                    test.append(by_group[g].pop(0))
        return train[: self.cfg.suite.train_tasks], test

    # -- stages

    def build_suite(self) -> dict:
        from swesrl.tasks import build_suite

        path = build_suite(
            self.suite_dir.resolve(), n=self.cfg.suite.n, seed=self.cfg.suite.seed, progress=True
        )
        insts = self.instances()
        train, test = self.split()
        return {
            "instances": str(path),
            "n": len(insts),
            "train_available": sum(i["split"] == "train" for i in insts.values()),
            "test_available": sum(i["split"] == "test" for i in insts.values()),
            "train_used": len(train),
            "test_used": len(test),
            "test_groups": {g: sum(group_of(i) == g for i in test) for g in GROUPS},
        }

    def expert(self, instance: dict):
        if self.cfg.expert == "scripted":
            from swesrl.tasks.expert import ScriptedExpert

            return ScriptedExpert(instance, seed=self.cfg.suite.seed, think_tags=True)
        return ShortExpert(instance, self.mirror, recovery=self.recovers(instance))

    def recovers(self, instance: dict) -> bool:
        """Whether this train task's expert makes (and repairs) a wrong edit: a fixed draw per task."""
        if instance["split"] != "train" or not self.cfg.expert_recovery:
            return False
        return (
            random.Random(f"{self.cfg.suite.seed}:{instance['instance_id']}").random()
            < self.cfg.expert_recovery
        )

    def run_experts(self, grade: bool = False) -> dict:
        """Expert trajectories on the train and held-out tasks; `grade` checks their patches with the harness."""
        from swesrl.agent.batch import finished_status, run_instance, traj_path
        from swesrl.agent.context import ContextPolicy
        from swesrl.harness import evaluate

        config = self.agent_config(context=ContextPolicy(kind="full"))
        train, test = self.split()
        out = self.out / "expert"
        results = {}
        for name, insts in (("train", train), ("test", test)):
            folder = out / name
            todo = [i for i in insts if not finished_status(traj_path(folder, i["instance_id"]))]
            with make_progress() as bar, ThreadPoolExecutor(self.cfg.workers) as pool:
                job = bar.add_task(f"expert trajectories ({name})", total=len(todo), status="")
                futs = [
                    pool.submit(run_instance, i, self.expert(i), config, folder, self.mirror) for i in todo
                ]
                for f in as_completed(futs):
                    f.result()
                    bar.advance(job)
            trajs = [json.loads(traj_path(folder, i["instance_id"]).read_text()) for i in insts]
            write_jsonl(out / f"{name}.jsonl", trajs)
            preds = [
                {
                    "instance_id": t["instance_id"],
                    "model_name_or_path": "short-expert",
                    "model_patch": t["info"].get("submission") or "",
                }
                for t in trajs
            ]
            results[name] = {
                "trajectories": len(trajs),
                "submitted": sum(t["info"]["exit_status"] == "submitted" for t in trajs),
                "mean_steps": round(sum(t["info"]["n_steps"] for t in trajs) / max(len(trajs), 1), 2),
            }
            if grade:
                summary = evaluate(
                    insts,
                    preds,
                    out / "graded",
                    name,
                    backend="local",
                    workers=self.cfg.workers,
                    timeout=120,
                    mirror=self.mirror,
                )
                results[name]["resolved"] = summary["resolved_instances"]
        return results

    def build_data(self) -> dict:
        from swesrl.agent.context import ContextPolicy
        from swesrl.training.data import BuildOptions, build_dataset
        from swesrl.training.data.steps import assistant_turn

        config = self.agent_config()
        opts = BuildOptions(policy=ContextPolicy(kind="srl", k=2), instances=self.instances())
        stats = {}
        for name in ("train", "test"):
            d = self.out / "data" / name
            s = build_dataset([self.out / "expert" / f"{name}.jsonl"], d, opts, config=config)
            relabelled = relabel_mistakes(
                d / "srl.jsonl", {i for i, x in self.instances().items() if self.recovers(x)}
            )
            rows = [
                {
                    "messages": r["prompt"]
                    + [
                        {
                            "role": "assistant",
                            "content": assistant_turn(r["expert_thought"], r["expert_action"]),
                        }
                    ]
                }
                for r in iter_jsonl(d / "srl.jsonl")
            ]
            write_jsonl(d / "sft_steps.jsonl", rows)
            stats[name] = {
                "srl_instances": s["instances"],
                "sft_conversations": s["sft_conversations"],
                "sft_steps": len(rows),
                "recovery_trajectories": relabelled,
            }
        return stats

    def make_model(self) -> dict:
        dest = self.out / "model" / "base"
        ck = self.cfg.model.checkpoint
        if dest.exists():
            shutil.rmtree(dest)
        if ck == "scratch" or (ck == "shipped" and not (SHIPPED_CHECKPOINT / "config.json").is_file()):
            if ck == "shipped":
                log.warning(
                    "no shipped checkpoint at %s; starting from a fresh tiny model", SHIPPED_CHECKPOINT
                )
            from swesrl.training.tiny import build_tiny_model

            texts = [json.dumps(r) for r in iter_jsonl(self.out / "data" / "train" / "sft_steps.jsonl")]
            build_tiny_model(
                dest,
                texts=texts,
                seed=self.seed,
                hidden_size=128,
                num_layers=4,
                intermediate_size=384,
                max_position_embeddings=4096,
            )
            source = "scratch"
        else:
            src = SHIPPED_CHECKPOINT if ck == "shipped" else Path(ck)
            if not (src / "config.json").is_file():
                raise UserError(f"model checkpoint not found: {src} (expected a folder with config.json)")
            shutil.copytree(src, dest)
            source = str(src)
        return {"path": str(dest), "source": source, "parameters": count_parameters(dest)}

    def evaluate_model(self, name: str, model_dir: Path, folder: Path | None = None) -> dict:
        from swesrl.agent.batch import run_batch
        from swesrl.agent.models import HFModel
        from swesrl.harness import evaluate
        from swesrl.training.rewards import FORMAT_FAILURE, srl_reward

        config = self.agent_config()
        _, test = self.split()
        folder = folder or self.out / "eval" / name
        model = HFModel(
            str(model_dir), device="cpu", max_new_tokens=int(config.sampling.get("max_new_tokens", 128))
        )
        run_batch(test, model, config, folder / "runs", workers=self.cfg.workers, mirror=self.mirror)
        preds = [
            json.loads(line) for line in (folder / "runs" / "preds.jsonl").read_text().splitlines() if line
        ]
        evaluate(
            test,
            preds,
            folder,
            "harness",
            backend="local",
            workers=self.cfg.workers,
            timeout=120,
            mirror=self.mirror,
        )
        resolved = {}
        for inst in test:
            rep = json.loads((folder / "harness" / inst["instance_id"] / "report.json").read_text())
            resolved[inst["instance_id"]] = bool(rep[inst["instance_id"]]["resolved"])
        # step similarity: greedy action vs the expert's on held-out step instances
        test_ids = {i["instance_id"] for i in test}
        rows = [
            r for r in iter_jsonl(self.out / "data" / "test" / "srl.jsonl") if r["instance_id"] in test_ids
        ]
        sampling = dict(config.sampling)
        completions: list[str] = []
        with make_progress() as bar:
            job = bar.add_task(f"step similarity ({name})", total=len(rows), status="")
            for i in range(0, len(rows), 8):
                chunk = rows[i : i + 8]
                outs = model.generate_batch([r["prompt"] for r in chunk], 1, **dict(sampling))
                completions += [o[0] for o in outs]
                bar.advance(job, len(chunk))
        rewards = srl_reward(completions, [r["expert_action"] for r in rows])
        atomic_write_text(
            folder / "steps.jsonl",
            "".join(
                json.dumps({"instance_id": r["instance_id"], "step": r["step"], "completion": c, "reward": w})
                + "\n"
                for r, c, w in zip(rows, completions, rewards, strict=True)
            ),
        )
        insts = {i["instance_id"]: i for i in test}
        metrics: dict[str, Any] = {"model": str(model_dir)}
        for g in ("all", *GROUPS):
            ids = [i for i in insts if g == "all" or group_of(insts[i]) == g]
            rw = [w for r, w in zip(rows, rewards, strict=True) if r["instance_id"] in ids]
            metrics[g] = {
                "tasks": len(ids),
                "resolved": sum(resolved[i] for i in ids),
                "resolve_rate": ratio(sum(resolved[i] for i in ids), len(ids)),
                "step_instances": len(rw),
                "step_similarity": ratio(sum(rw), len(rw)),
                "exact_actions": ratio(sum(w == 1.0 for w in rw), len(rw)),
                "format_failures": ratio(sum(w == FORMAT_FAILURE for w in rw), len(rw)),
            }
        by_step: dict[int, list[float]] = {}
        for r, w in zip(rows, rewards, strict=True):
            by_step.setdefault(r["step"], []).append(w)
        metrics["step_similarity_by_step"] = {
            str(k): ratio(sum(v), len(v)) for k, v in sorted(by_step.items())
        }
        metrics["resolved_ids"] = sorted(i for i, ok in resolved.items() if ok)
        return metrics

    def train_sft(self, base: Path, out_dir: Path | None = None, steps: int | None = None) -> dict:
        """Step-wise SFT (prompt = the SRL context, loss on the expert's reply), a plain PyTorch loop.

        It trains the same tokens as `swesrl train sft` (TRL's SFTTrainer, `train.loss_on: auto`:
        the final reply, not the thought-less history turns of a step row); a plain loop is
        lighter on a 2-core CPU for a few dozen steps."""
        s = self.cfg.sft.model_copy(update={"steps": steps} if steps else {})
        out_dir = out_dir or self.out / "sft"
        rows = list(iter_jsonl(self.out / "data" / "train" / "sft_steps.jsonl"))
        return sft_loop(base, rows, out_dir, s.steps, s.batch_size, s.learning_rate, self.seed)

    def train_srl(self, base: Path, out_dir: Path | None = None, steps: int | None = None) -> dict:
        from swesrl.training.srl import SRLConfig, train_srl

        s = self.cfg.srl.model_copy(update={"steps": steps} if steps else {})
        out_dir = out_dir or self.out / "srl"
        cfg = SRLConfig.model_validate(
            {
                "model": {"path": str(base), "dtype": "float32"},
                "data": {"path": str(self.out / "data" / "train" / "srl.jsonl")},
                "dynamic_sampling": {"enabled": True, "max_rounds": 3, "on_exhausted": "fill"},
                "train": {
                    "prompts_per_step": s.prompts_per_step,
                    "num_generations": s.num_generations,
                    "micro_batch_size": s.prompts_per_step * s.num_generations,
                    "learning_rate": s.learning_rate,
                    "max_steps": s.steps,
                    "temperature": s.temperature,
                    "max_completion_length": s.max_completion_length,
                    "seed": self.seed,
                },
                "output": {
                    "dir": str(out_dir),
                    "save_steps": max(1, s.steps // 2),
                    "save_total_limit": 1,
                    "logging_steps": 1,
                    "report_to": ["none"],
                },
            }
        )
        from swesrl.training.progress import metrics_line
        from swesrl.utils import step_bar

        with step_bar("SRL", cfg.train.max_steps, metrics_line) as on_step:
            return train_srl(cfg, on_step)

    def srl_or_skip(self, base: Path, out_dir: Path | None = None, steps: int | None = None) -> dict:
        """SRL; a policy whose rollouts never differ in reward (e.g. all malformed) gives GRPO nothing: say so."""
        from swesrl.training.srl import DynamicSamplingExhausted

        try:
            return self.train_srl(base, out_dir, steps)
        except DynamicSamplingExhausted as e:
            log.warning("SRL skipped: %s", e)
            return {"global_step": 0, "final_model": str(base), "skipped": str(e)}

    # -- the whole run

    def run(self) -> dict:
        t0 = time.monotonic()
        import torch

        torch.manual_seed(self.seed)
        suite = self.stage("suite", self.build_suite)
        expert = self.stage("expert", self.run_experts)
        data = self.stage("data", self.build_data)
        model = self.stage("model", self.make_model)
        evals = {"base": self.stage("eval_base", lambda: self.evaluate_model("base", Path(model["path"])))}
        sft = self.stage("sft", lambda: self.train_sft(Path(model["path"])))
        evals["sft"] = self.stage("eval_sft", lambda: self.evaluate_model("sft", Path(sft["final_model"])))
        srl = self.stage("srl", lambda: self.srl_or_skip(Path(sft["final_model"])))
        evals["srl"] = self.stage("eval_srl", lambda: self.evaluate_model("srl", Path(srl["final_model"])))
        report = {
            "minutes": self.minutes,
            "seed": self.seed,
            "config": self.cfg.model_dump(),
            "suite": suite,
            "expert": expert,
            "data": data,
            "model": model,
            "training": {
                "sft": {k: sft.get(k) for k in ("global_step", "first_loss", "last_loss", "final_model")},
                "srl": {k: srl.get(k) for k in ("global_step", "final_model", "skipped")}
                | {"last_reward": (srl.get("metrics") or {}).get("reward")},
            },
            "evaluations": evals,
            "stage_seconds": self.timings,
            "run_seconds_this_invocation": round(time.monotonic() - t0, 1),
        }
        report["plots"] = write_plots(
            self.out, evals, [Path(p) for p in sft.get("plots", []) + srl.get("plots", [])]
        )
        atomic_write_json(self.out / "report.json", report)
        atomic_write_text(self.out / "report.md", render_report(report))
        return report


# ---------------------------------------------------------------- helpers


def relabel_mistakes(srl_path: Path, recovering: set[str]) -> int:
    """Give each recovery trajectory's wrong-edit row the right edit as its target (same prompt: task +
    the find and read steps), so no row teaches the mistake; return how many were relabelled."""
    rows = list(iter_jsonl(srl_path))
    fixes = {
        r["instance_id"]: r
        for r in rows
        if r["instance_id"] in recovering and r["step"] == MISTAKE_STEP + 1 and r["n_steps"] == 5
    }
    for r in rows:
        fix = fixes.get(r["instance_id"])
        if fix and r["step"] == MISTAKE_STEP:
            r["expert_action"] = fix["expert_action"]  # the thought stays "Fix the bug in ..."
    if fixes:
        write_jsonl(srl_path, rows)
    return len(fixes)


def encode_reply(tok, messages: list[dict], max_len: int = 2048) -> tuple[list[int], list[float]]:
    """Token ids of a conversation and per-token loss weights: 1 on the last (assistant) reply, 0 elsewhere."""
    full = tok.apply_chat_template(messages, tokenize=False)
    prompt = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    ids = tok(full, add_special_tokens=False)["input_ids"]
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    weights = [0.0] * n_prompt + [1.0] * (len(ids) - n_prompt)
    return ids[-max_len:], weights[-max_len:]


def sft_loop(
    base: Path, rows: list[dict], out_dir: Path, steps: int, batch_size: int, lr: float, seed: int
) -> dict:
    """AdamW on the reply tokens, linear warm-up (10%) then cosine; saves `out_dir/final` and metrics."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from swesrl.training.plots import plot_metrics

    final = out_dir / "final"
    if (final / "config.json").is_file() and (out_dir / "summary.json").is_file():
        return json.loads((out_dir / "summary.json").read_text())
    torch.manual_seed(seed)
    rng = random.Random(seed)
    tok = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    data = [encode_reply(tok, r["messages"]) for r in rows]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 10)
    metrics = out_dir / "metrics.jsonl"
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics.unlink(missing_ok=True)
    losses: list[float] = []
    model.train()
    with make_progress() as bar:
        job = bar.add_task("SFT", total=steps, status="")
        for step in range(steps):
            batch = rng.sample(data, min(batch_size, len(data)))
            scale = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
            for g in opt.param_groups:
                g["lr"] = lr * scale
            width = max(len(x) for x, _ in batch)
            ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
            w = torch.zeros((len(batch), width))
            att = torch.zeros((len(batch), width), dtype=torch.long)
            for i, (x, ww) in enumerate(batch):
                ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
                w[i, : len(ww)] = torch.tensor(ww)
                att[i, : len(x)] = 1
            logits = model(input_ids=ids, attention_mask=att).logits[:, :-1]  # (B, T-1, V)
            nll = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), reduction="none"
            ).view(len(batch), -1)
            loss = (nll * w[:, 1:]).sum() / w[:, 1:].sum()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            with open(metrics, "a", encoding="utf-8") as f:
                f.write(
                    json.dumps({"step": step + 1, "loss": losses[-1], "learning_rate": lr * scale}) + "\n"
                )
            bar.update(job, advance=1, status=f"loss {losses[-1]:.3f}")
    model.save_pretrained(final)
    tok.save_pretrained(final)
    plots = plot_metrics(metrics, out_dir / "plots")
    summary = {
        "global_step": steps,
        "final_model": str(final),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "plots": [str(p) for p in plots],
    }
    atomic_write_json(out_dir / "summary.json", summary)
    return summary


def group_of(instance: dict) -> str:
    from swesrl.tasks.catalog import TEST_FAMILIES

    return "heldout_family" if instance.get("family") in TEST_FAMILIES else "heldout_repo"


def ratio(a: float, b: int) -> float:
    return round(a / b, 4) if b else 0.0


def count_parameters(path: Path) -> int:
    cfg = json.loads((path / "config.json").read_text())
    h, n_layers, v = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    inter = cfg["intermediate_size"]
    kv = h // cfg["num_attention_heads"] * cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    per_layer = h * h * 2 + 2 * h * kv + 3 * h * inter + 2 * h + h + 2 * kv
    return v * h + n_layers * per_layer + h + (0 if cfg.get("tie_word_embeddings", True) else v * h)


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


def run_demo(
    out: str | Path, minutes: float = REFERENCE_MINUTES, seed: int = 0, overrides: list[str] | None = None
) -> dict:
    """Run (or resume) the demo in `out`; returns the report dict."""
    if minutes <= 0:
        raise UserError(f"--minutes must be positive, got {minutes}")
    choose_omp_wait_policy()  # before torch loads
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    cfg = scaled(load_config(DemoConfig, ["demo.yaml", *(overrides or [])]), minutes)
    meta = {"minutes": minutes, "seed": seed, "config": cfg.model_dump()}
    meta_path = out / "stages" / "run.json"
    if meta_path.is_file() and json.loads(meta_path.read_text()) != meta:
        raise UserError(
            f"{out} holds a demo run with other settings ({meta_path}); use another --out or the same settings"
        )
    atomic_write_json(meta_path, meta)
    return Demo(out, cfg, minutes, seed).run()


def demo(
    out: str = typer.Option(
        "demo-out", "--out", "-o", help="Output folder (a rerun resumes finished stages)."
    ),
    minutes: float = typer.Option(
        15.0, "--minutes", "-m", help="Time budget; budgets scale with it (CI: 2)."
    ),
    seed: int = typer.Option(0, "--seed", "-s", help="Training seed (the task suite is fixed by demo.yaml)."),
    config: list[str] = typer.Option(None, "--config", "-c", help="Overrides: demo YAML files or key=value."),
) -> None:
    """The main job: tasks, expert trajectories, SRL/SFT data, a tiny model, SFT warm-up, SRL, held-out evaluation."""
    from rich.console import Console
    from rich.table import Table

    t0 = time.monotonic()
    report = run_demo(out, minutes, seed, config)
    table = Table(title=f"swesrl demo: held-out tasks ({out}/report.md)")
    for col in ("stage", "resolve rate", "unseen repo", "unseen family", "step similarity", "exact actions"):
        table.add_column(col)
    for st in STAGES:
        e = report["evaluations"][st]
        table.add_row(
            LABELS[st],
            f"{e['all']['resolve_rate']:.3f} ({e['all']['resolved']}/{e['all']['tasks']})",
            f"{e['heldout_repo']['resolve_rate']:.3f}",
            f"{e['heldout_family']['resolve_rate']:.3f}",
            f"{e['all']['step_similarity']:.3f}",
            f"{e['all']['exact_actions']:.3f}",
        )
    console = Console()
    console.print(table)
    console.print(
        f"wall time {time.monotonic() - t0:.0f}s; report: {out}/report.md, {out}/report.json, {out}/plots/"
    )
