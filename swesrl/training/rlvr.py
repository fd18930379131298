"""RLVR: GRPO on whole agent episodes in sandboxes, reward from the harness (resolved, 1/0).

The algorithm, read top to bottom:
1. Each step takes B task instances (rows of the dataset), G episodes each (TRL's RepeatSampler).
   An episode is `swesrl.agent.loop.run_agent` with the policy as its model in a fresh sandbox
   (`training/rollout.py`); every episode of a process runs at once (up to
   `rollout.max_concurrent_episodes`) and their next turns are generated together.
2. Reward: the episode's submission graded by `swesrl.harness.grade_patch` in another fresh sandbox
   (`reward.kind: resolved`, the paper; or `f2p_fraction`: FAIL_TO_PASS tests passing, 0 if a
   PASS_TO_PASS test fails). A sandbox that does not start, an agent crash, a grading failure and an
   episode past `rollout.episode_timeout` score 0 with the reason logged; the step goes on.
3. Dynamic sampling with refill, the SRL trainer's own code (`srl.make_trainer_class`): a group whose G
   rewards are all equal is dropped and fresh instances are rolled out, up to `max_rounds` rounds;
   a step where no group had signal trains on zero-advantage groups (no update but KL) instead of
   stopping, because all-failed groups are normal early in RLVR.
4. GRPO update: TRL's loss. `beta > 0` keeps a reference model and adds its KL (logged as `kl`);
   `num_iterations > 1` reuses a batch for several updates, so the ratio moves and `clip_epsilon`
   clips.

Token-in/token-out: the trained tokens are exactly the ids the policy sampled (with their sampling
log-probs); observations and templates are tokenised once, when the policy is queried, and masked
out (TRL's `env_mask`). How each context policy (`agent.context.kind`) maps to training samples:
- `full` (the whole history): one sequence per episode, the first prompt then every sampled turn
  and every observation in order; observations masked (`env_mask` 0). One TRL row per episode.
- `srl` (task + last k steps, as SRL trains and the agent runs by default): each turn saw its own
  window, so each turn is its own sample: the window's prompt ids plus the sampled ids, carrying
  the episode's advantage. TRL scores one row per episode (placeholder tokens) and, after dynamic
  sampling, each kept episode's row becomes its turns (`RLVRTrainer._expand_turns`); old / reference
  log-probs are computed on the turns. Each optimizer step splits the turns into
  `gradient_accumulation_steps` micro-batches, so a micro-batch holds about turns/episodes times
  `micro_batch_size` sequences; they are sorted by length and each micro-batch is cut to its own
  width (`length_sorted_micro_batches`), as the padding of prompts from ~200 to ~800 tokens would
  otherwise be most of the update. Episodes take different numbers of turns, so every process pads
  its turns with empty rows to the largest process's count (TRL's loss all-gathers per-row tensors
  of each micro-batch; their shapes must match on every process). With dapo loss every sampled
  token weighs the same, so an episode with more turns weighs more.

Engine: TRL's `GRPOTrainer` (via `rollout_func`), so `accelerate launch` (DDP, ZeRO-3, FSDP, several
nodes), vLLM weight sync (server / colocate), checkpoints and resume, TensorBoard / W&B are TRL's and
transformers'. Generation: transformers in process (batched), vLLM colocate (one batched call), or a
`trl vllm-serve` server (concurrent requests). Each process runs its own episodes in its own node's
sandboxes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import Field

from swesrl.agent.prompts import initial_messages, load_agent_config
from swesrl.config import StrictModel, load_config
from swesrl.core.instances import default_mirror, load_instances, select
from swesrl.envs.base import SandboxConfig
from swesrl.training.generation import HFBackend, VLLMColocateBackend, VLLMServerBackend
from swesrl.training.progress import OnStep, train_and_save
from swesrl.training.rollout import (
    RewardConfig,
    RolloutConfig,
    RolloutSetup,
    Sample,
    full_sample,
    run_episodes,
    turn_samples,
)
from swesrl.training.srl import (
    DynamicSamplingConfig,
    GenerationConfig,
    ModelConfig,
    OutputConfig,
    TrainConfig,
    grpo_args,
    load_policy,
    make_trainer_class,
)
from swesrl.utils import UserError

log = logging.getLogger(__name__)
KEY_STRIDE = 10**9  # episode key = process index * KEY_STRIDE + the episode's number on that process


class RLVRDataConfig(StrictModel):
    instances: str
    """instances.jsonl of the tasks to train on (a bundled suite or SWE-bench-schema instances)."""
    mirror: str | None = None
    """Folder of repositories (default: `repos/` beside the instances file)."""
    ids: list[str] | None = None
    """Only these instance ids."""
    split: str | None = None
    """Only instances whose `split` field is this (e.g. train)."""
    limit: int | None = None


class RLVRTrainConfig(TrainConfig):
    prompts_per_step: int = Field(128, ge=1)
    """B: task instances per optimizer step (paper: 128 for RLVR)."""
    num_generations: int = Field(8, ge=2)
    """G: episodes per instance (paper: 8)."""
    micro_batch_size: int = Field(2, ge=1)
    """TRL rows per device per forward/backward pass (`full` context: episodes; `srl`: see module doc)."""
    max_completion_length: int = 1024
    """Tokens per agent turn (monologue + action)."""
    max_steps: int = 10


class RLVRDynamicSamplingConfig(DynamicSamplingConfig):
    max_rounds: int = Field(2, ge=1)
    """Rollout rounds per step, the first included, before training on what was kept."""


class RLVROutputConfig(OutputConfig):
    dir: str = "runs/rlvr"
    save_steps: int = 5


class RLVRConfig(StrictModel):
    model: ModelConfig
    data: RLVRDataConfig
    agent: list[str] = ["agent.yaml"]
    """Agent config sources (bundled names, paths, key=value overrides); its `context` decides the
    training samples (module doc); its `sampling` is ignored: the policy samples at train.temperature."""
    sandbox: SandboxConfig = SandboxConfig()
    """The sandboxes episodes and gradings run in (each process uses its own node's)."""
    reward: RewardConfig = RewardConfig()
    rollout: RolloutConfig = RolloutConfig()
    dynamic_sampling: RLVRDynamicSamplingConfig = RLVRDynamicSamplingConfig()
    train: RLVRTrainConfig = RLVRTrainConfig()
    generation: GenerationConfig = GenerationConfig()
    output: RLVROutputConfig = RLVROutputConfig()


def load_rlvr_instances(d: RLVRDataConfig) -> tuple[list[dict], Path]:
    path = Path(d.instances)
    if not path.is_file():
        raise UserError(f"instances not found: {path}")
    insts = [dict(i) for i in load_instances(path)]
    if d.ids:
        insts = [dict(i) for i in select(insts, d.ids)]
    if d.split:
        insts = [i for i in insts if i.get("split") == d.split]
    insts = insts[: d.limit] if d.limit else insts
    if not insts:
        raise UserError(f"{path}: no instances selected")
    return insts, Path(d.mirror) if d.mirror else default_mirror(path)


def turn_rows_per_process(counts: list[int], per_step: int) -> int:
    """Rows every process trains on in the `srl` context, given each process's number of turn samples:
    the largest count rounded up to a multiple of `per_step` (TRL's micro-batches per generation), at
    least one micro-batch. The same on every process, so the micro-batches, and the collectives TRL
    runs on them, have the same shapes everywhere.

    >>> turn_rows_per_process([12, 10], 1), turn_rows_per_process([7, 9], 4), turn_rows_per_process([0, 0], 2)
    (12, 12, 2)
    """
    most = max(counts)
    return max(-(-most // per_step) * per_step, per_step)


def length_sorted_micro_batches(batch: dict, n: int) -> list[dict]:
    """The srl context's turn samples as `n` micro-batches of similar lengths, each cut to its own width.

    TRL shuffles a generation batch's rows and splits them in n, so every micro-batch is as wide as the
    longest prompt plus the longest reply of the whole batch; turn prompts run from ~200 to ~800 tokens
    on the bundled tasks, so most of the forward/backward is padding. Here rows are sorted by length,
    split into n runs of equal size, and each run drops the prompt columns (left padding) and reply
    columns (right padding) none of its rows uses. Used only when all n micro-batches form one optimizer
    step (steps_per_generation == gradient_accumulation_steps), so the order of rows does not matter:
    the dapo loss of a step is the same sum over its tokens, divided by the step's token count."""
    import torch

    prompt_mask, completion_mask = batch["prompt_mask"], batch["completion_mask"]
    rows, width = completion_mask.shape
    if rows % n:
        raise ValueError(f"{rows} rows do not split into {n} micro-batches")
    prompt_len = prompt_mask.sum(1)  # (R,) left padded
    cols = torch.arange(1, width + 1, device=completion_mask.device)
    reply_len = (completion_mask.ne(0) * cols).amax(1)  # (R,) right padded: last used column
    order = torch.argsort(prompt_len + reply_len, stable=True)
    out = []
    for chunk in order.chunk(n):
        p = max(int(prompt_len[chunk].max()), 1)
        c = max(int(reply_len[chunk].max()), 1)
        part = {}
        for key, value in batch.items():
            if not isinstance(value, torch.Tensor) or value.dim() == 0:
                part[key] = value
                continue
            value = value[chunk.to(value.device)]
            if key in ("prompt_ids", "prompt_mask"):
                value = value[:, value.size(1) - p :]
            elif value.dim() == 2 and value.size(1) == width:
                value = value[:, :c]  # reply-aligned: ids, masks, per-token log-probs and ratios
            part[key] = value
        out.append(part)
    return out


def episode_reward(completions, episode_reward, **kwargs) -> list[float]:
    """The reward the rollout already graded (`rollout_func` passes it as an extra field)."""
    return [float(r) for r in episode_reward]


def make_rlvr_trainer_class():
    """RLVRTrainer: the SRL trainer (dynamic sampling) with agent episodes as its rollouts."""
    import torch
    from accelerate.utils import gather_object
    from trl.models.utils import disable_gradient_checkpointing, unwrap_model_for_generation
    from trl.trainer.utils import pad

    base = make_trainer_class()

    def padded(rows: list[list], value, side: str, device, dtype=None):
        return pad([torch.tensor(r, dtype=dtype) for r in rows], padding_value=value, padding_side=side).to(
            device
        )

    class RLVRTrainer(base):
        stop_without_signal = False  # all-failed groups are normal in RLVR: train on zero advantages

        def __init__(self, *args, setup: RolloutSetup, **kwargs):
            super().__init__(*args, rollout_func=self._rollout, **kwargs)
            self.setup = setup
            self.context = setup.agent.context.kind
            self._episodes: dict[int, Any] = {}
            self._round_keys: list[int] = []
            self._rollout_inputs: list[dict] = []

        # -- rollouts -----------------------------------------------------------------------------

        def _scored_round(self, inputs):
            self._rollout_inputs = inputs
            out, keep = super()._scored_round(inputs)
            out["episode_key"] = torch.tensor(self._round_keys, device=self.accelerator.device)
            return out, keep

        def _backend(self, model):
            t = self.args
            max_new = t.max_completion_length
            if not self.use_vllm:
                return HFBackend(
                    model,
                    self._tokenizer,
                    max_new,
                    t.temperature,
                    t.top_p,
                    draft_tokens=self.setup.rollout.draft_tokens,
                )
            if t.vllm_mode == "colocate":
                return VLLMColocateBackend(self.vllm_generation.llm, max_new, t.temperature, t.top_p)
            url = t.vllm_server_base_url or f"http://{t.vllm_server_host}:{t.vllm_server_port}"
            return VLLMServerBackend(url, max_new, t.temperature, t.top_p)

        def _rollout(self, prompts: list, trainer) -> dict:
            instances = [json.loads(row["instance"]) for row in self._rollout_inputs]
            if self.use_vllm:
                episodes, stats = run_episodes(instances, self.setup, self._backend(None), self._tokenizer)
            else:
                # On CPU the rollout generates with one intra-op thread: spinning OpenMP workers starve
                # the episodes' sandbox processes (8 episodes: 28.6 s -> 10.7 s measured on 2 cores).
                threads = torch.get_num_threads()
                if self.accelerator.device.type == "cpu":
                    torch.set_num_threads(1)
                with (
                    unwrap_model_for_generation(
                        self.model_wrapped,
                        self.accelerator,
                        gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                        gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
                    ) as model,
                    torch.no_grad(),
                    self._dist.summon_full_params(self.model_wrapped, recurse=False),
                ):
                    try:
                        episodes, stats = run_episodes(
                            instances, self.setup, self._backend(model), self._tokenizer
                        )
                    finally:
                        torch.set_num_threads(threads)
            first = self.accelerator.process_index * KEY_STRIDE + len(self._episodes)
            self._round_keys = list(range(first, first + len(episodes)))
            self._episodes.update(zip(self._round_keys, episodes, strict=True))
            self._log_rollout(stats)
            pad_id = self._tokenizer.pad_token_id
            if self.context == "full":
                samples = [full_sample(ep, pad_id) for ep in episodes]
            else:  # placeholders: each row becomes its episode's turns after dynamic sampling
                samples = [Sample([pad_id], [pad_id], [0.0], [0]) for _ in episodes]
            return {
                "prompt_ids": [s.prompt_ids for s in samples],
                "completion_ids": [s.completion_ids for s in samples],
                "logprobs": [s.logprobs for s in samples],
                "env_mask": [s.env_mask for s in samples],
                "episode_reward": [ep.reward for ep in episodes],
            }

        def _log_rollout(self, stats: dict) -> None:
            keys = ("episodes", "failed_episodes", "generated_tokens", "turns", "rollout_seconds")
            keys += ("prefill_tokens", "reused_prompt_tokens")
            keys += ("decode_steps", "decode_rows", "decode_seconds")
            keys += ("drafted_tokens", "accepted_drafts")
            local = torch.tensor([float(stats[k]) for k in keys], device=self.accelerator.device)
            tot = dict(
                zip(keys, self.accelerator.gather(local).view(-1, len(keys)).sum(0).tolist(), strict=True)
            )
            wall = max(tot["rollout_seconds"] / self.accelerator.num_processes, 1e-9)
            m = self._metrics["train"]
            m["rollout/episodes"].append(tot["episodes"])
            m["rollout/generated_tokens"].append(tot["generated_tokens"])
            m["rollout/seconds"].append(wall)
            m["rollout/failed_episodes"].append(tot["failed_episodes"])
            m["rollout/turns_per_episode"].append(tot["turns"] / max(tot["episodes"], 1))
            m["rollout/episodes_per_min"].append(60 * tot["episodes"] / wall)
            m["rollout/generated_tokens_per_s"].append(tot["generated_tokens"] / wall)
            prompt = tot["prefill_tokens"] + tot["reused_prompt_tokens"]
            if prompt:  # the share of prompt tokens whose KV states came from the prefix cache
                m["rollout/prefix_reuse"].append(tot["reused_prompt_tokens"] / prompt)
            if tot["decode_steps"]:  # the transformers decode loop: batch rows and wall ms per step
                m["rollout/decode_rows_per_step"].append(tot["decode_rows"] / tot["decode_steps"])
                m["rollout/decode_ms_per_step"].append(1000 * tot["decode_seconds"] / tot["decode_steps"])
                # generated tokens per row per step: 1 without drafts, more as drafts are accepted
                m["rollout/decode_tokens_per_row"].append(
                    tot["generated_tokens"] / max(tot["decode_rows"], 1)
                )
            if tot["drafted_tokens"]:
                m["rollout/draft_acceptance"].append(tot["accepted_drafts"] / tot["drafted_tokens"])

        # -- after dynamic sampling: per-turn samples for the srl context -------------------------

        def _generate_and_score_completions(self, inputs):
            if self.model.training:
                self._episodes = {}
            out = super()._generate_and_score_completions(inputs)
            if self.context != "full" and self.model.training:
                out = self._expand_turns(out)
            out.pop("episode_key", None)
            return out

        def _prepare_inputs(self, generation_batch):
            t = self.args
            if self.context == "full" or not self.model.training:
                return super()._prepare_inputs(generation_batch)
            if t.steps_per_generation != t.gradient_accumulation_steps:
                return super()._prepare_inputs(generation_batch)  # several steps per batch: TRL's shuffle
            # TRL's buffering (generate once per steps_per_generation * num_iterations micro-steps),
            # with length-sorted micro-batches instead of shuffled ones
            if (
                self._step % (t.steps_per_generation * self.num_iterations) == 0
                or self._buffered_inputs is None
            ):
                batch = self._generate_and_score_completions(generation_batch)
                self._buffered_inputs = length_sorted_micro_batches(batch, t.steps_per_generation)
            return self._buffered_inputs[self._step % t.steps_per_generation]

        def _fetch_episodes(self, keys: list[int]) -> dict:
            """The episodes behind `keys`; those rolled out on other processes (moved by dynamic
            sampling) come from there (two gather_object calls, every process in step)."""
            have = {k: self._episodes[k] for k in keys if k in self._episodes}
            if self.accelerator.num_processes == 1:
                return have
            wanted = gather_object([[k for k in keys if k not in self._episodes]])
            offer = {k: self._episodes[k] for req in wanted for k in req if k in self._episodes}
            for got in gather_object([offer]):
                have.update({k: v for k, v in got.items() if k in keys})
            return have

        def _expand_turns(self, out: dict) -> dict:
            keys = out["episode_key"].tolist()
            episodes = self._fetch_episodes(keys)
            adv = out["advantages"].tolist()
            pad_id = self._tokenizer.pad_token_id
            rows = [(s, a) for k, a in zip(keys, adv, strict=True) for s in turn_samples(episodes[k])]
            # the loss normalises by the trained tokens of the whole batch, zero-advantage turns included
            tokens = sum(sum(s.env_mask) for s, _ in rows)
            n_turns = len(rows)
            if self._zero_advantage_is_no_gradient():
                rows = [(s, a) for s, a in rows if a != 0.0]
            # Every process must hold the same number of rows: TRL splits the batch into
            # steps_per_generation micro-batches and, in `_compute_loss`, all-gathers per-row tensors of
            # each micro-batch; episodes on different processes have different numbers of turns, and
            # an all-gather of (12,) against (10,) aborts gloo (and hangs or corrupts NCCL). So all pad
            # with empty rows (env_mask 0: no loss, no token count) to the largest count, rounded up.
            dev = self.accelerator.device
            local = torch.tensor([len(rows)], device=dev)
            counts = self.accelerator.gather(local).tolist()
            n_rows = turn_rows_per_process(counts, self.args.steps_per_generation)
            filler = Sample([pad_id], [pad_id], [0.0], [0])
            rows += [(filler, 0.0)] * (n_rows - len(rows))
            prompt_ids = padded([s.prompt_ids for s, _ in rows], pad_id, "left", dev)
            prompt_mask = padded([[1] * len(s.prompt_ids) for s, _ in rows], 0, "left", dev)
            completion_ids = padded([s.completion_ids for s, _ in rows], pad_id, "right", dev)
            completion_mask = padded([s.env_mask for s, _ in rows], 0, "right", dev)
            new = {
                "prompt_ids": prompt_ids,
                "prompt_mask": prompt_mask,
                "completion_ids": completion_ids,
                "completion_mask": completion_mask,
                "advantages": torch.tensor([a for _, a in rows], device=dev, dtype=out["advantages"].dtype),
            }
            ids = torch.cat([prompt_ids, completion_ids], dim=1)
            attn = torch.cat([prompt_mask, completion_mask], dim=1)
            width = completion_ids.size(1)
            bs = self.args.per_device_train_batch_size
            with (
                torch.no_grad(),
                disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs),
            ):
                if "old_per_token_logps" in out:
                    new["old_per_token_logps"] = self._get_per_token_logps_and_entropies(
                        self.model, ids, attn, width, batch_size=bs
                    )[0]
                if "ref_per_token_logps" in out:
                    if self.ref_model is None:
                        raise UserError(
                            "RLVR with the srl context and beta > 0 needs a reference model (no PEFT)"
                        )
                    new["ref_per_token_logps"] = self._get_per_token_logps_and_entropies(
                        self.ref_model, ids, attn, width, batch_size=bs
                    )[0]
            if "sampling_per_token_logps" in out:
                sampling = padded([s.logprobs for s, _ in rows], 0.0, "right", dev, torch.float32)
                new["sampling_per_token_logps"] = sampling
                if "importance_sampling_ratio" in out:
                    new["importance_sampling_ratio"] = self._is_ratio(
                        new["old_per_token_logps"], sampling, completion_mask
                    )
            local = torch.tensor([tokens, n_turns], device=dev)
            tokens_all, turns_all = self.accelerator.gather(local).view(-1, 2).sum(0).tolist()
            new["num_items_in_batch"] = torch.tensor(float(tokens_all), device=dev)
            # turn samples of all processes, those with a gradient (no filler rows), rows per process
            self._metrics["train"]["rollout/turn_samples"].append(float(turns_all))
            self._metrics["train"]["rollout/trained_turn_samples"].append(float(sum(counts)))
            self._metrics["train"]["rollout/turn_rows_per_process"].append(float(n_rows))
            return new

        def _zero_advantage_is_no_gradient(self) -> bool:
            """Whether a turn whose advantage is 0 adds exactly nothing to the gradient, so its forward and
            backward can be skipped: no KL term (beta 0), no entropy mask over the batch, and a loss that
            divides by the batch's token count (dapo, cispo) rather than by its rows or micro-batches.
            Zero-advantage turns are every turn of a group whose G rewards were equal: the filler groups
            of a step where dynamic sampling kept too few (all-failed groups are normal early in RLVR)."""
            return (
                self.beta == 0.0 and self.top_entropy_quantile >= 1.0 and self.loss_type in ("dapo", "cispo")
            )

        def _is_ratio(self, old, sampling, mask):
            """TRL's vLLM importance-sampling correction, on the turn samples."""
            diff = torch.nan_to_num((old - sampling) * mask, nan=0.0)
            mode = self.vllm_importance_sampling_mode
            ratio = torch.exp(diff.sum(-1, keepdim=True) if mode.startswith("sequence") else diff)
            lo, hi = self.vllm_importance_sampling_clip_min, self.vllm_importance_sampling_clip_max
            if mode.endswith("truncate"):
                return torch.clamp(ratio, min=lo, max=hi)
            bad = (ratio < (lo if lo is not None else -float("inf"))) | (
                ratio > (hi if hi is not None else float("inf"))
            )
            return ratio.masked_fill(bad, 0.0)

    return RLVRTrainer


def train_rlvr(cfg: RLVRConfig, on_step: OnStep | None = None) -> dict:
    """Run RLVR; return a summary (final step, last metrics, output folder). `on_step(step, max_steps,
    metrics)` is called for every logged step (the trainer itself prints nothing)."""
    from datasets import Dataset

    from swesrl.training.plots import MetricsFileCallback

    instances, mirror = load_rlvr_instances(cfg.data)
    agent_cfg = load_agent_config(cfg.agent)
    rows = [{"prompt": initial_messages(agent_cfg, i), "instance": json.dumps(i)} for i in instances]
    model, tokenizer = load_policy(cfg.model)
    args = grpo_args(cfg)
    out_dir = Path(cfg.output.dir)
    setup = RolloutSetup(agent_cfg, cfg.sandbox, mirror, cfg.rollout, cfg.reward)
    trainer = make_rlvr_trainer_class()(
        model=model,
        reward_funcs=[episode_reward],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        dynamic_sampling=cfg.dynamic_sampling,
        callbacks=[MetricsFileCallback(out_dir / "metrics.jsonl")],
        setup=setup,
    )
    summary = train_and_save(trainer, tokenizer, out_dir, cfg.output.resume, cfg.output.plots, on_step)
    history = summary.pop("log_history")
    summary["metrics"] = next((h for h in reversed(history) if "reward" in h), {})
    return summary


def load_rlvr_config(config: str, overrides: list[str] | None = None) -> RLVRConfig:
    return load_config(RLVRConfig, [config, *(overrides or [])])
