"""RLVR on the tiny shipped checkpoint: real episodes in bubblewrap sandboxes, real grading, real TRL steps."""

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from swesrl.agent.context import select_context
from swesrl.agent.prompts import load_agent_config
from swesrl.core.instances import default_mirror, load_instances
from swesrl.envs.base import SandboxConfig
from swesrl.training.generation import HFBackend
from swesrl.training.rlvr import load_rlvr_config, train_rlvr
from swesrl.training.rollout import (
    RolloutSetup,
    chat_ids,
    full_sample,
    grade_reward,
    run_episodes,
    turn_samples,
)
from swesrl.training.srl import ModelConfig, load_policy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TINY = ROOT / "swesrl" / "checkpoints" / "tiny-demo"
# bundled tasks (build_suite seed 5) the shipped checkpoint resolves greedily, and one it does not
SOLVED = ["swesrl-bench__maple-box-110", "swesrl-bench__zephyr-core-140"]
UNSOLVED = "swesrl-bench__ivory-py-176"

pytestmark = pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap not installed")


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """Six bundled tasks plus a broken copy of one (its base commit does not exist: no sandbox starts)."""
    from swesrl.tasks import build_suite

    path = build_suite(tmp_path_factory.mktemp("rlvr") / "suite", n=6, seed=5)
    rows = [dict(i) for i in load_instances(path)]
    broken = {**next(r for r in rows if r["instance_id"] == SOLVED[0])}
    broken.update(instance_id="broken-sandbox", base_commit="f" * 40)
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, broken]))
    return path


@pytest.fixture(scope="module")
def policy():
    return load_policy(ModelConfig(path=str(TINY)))


def episodes(suite, policy, kind, ids, temperature=0.0):
    model, tok = policy
    insts = {i["instance_id"]: dict(i) for i in load_instances(suite)}
    agent = load_agent_config(["agent_tiny.yaml", f"context.kind={kind}", "step_limit=5"])
    setup = RolloutSetup(agent, SandboxConfig(timeout=30), default_mirror(suite))
    return run_episodes([insts[i] for i in ids], setup, HFBackend(model, tok, 224, temperature), tok), agent


def test_full_context_trains_exactly_the_sampled_tokens(suite, policy):
    model, tok = policy
    (eps, stats), agent = episodes(suite, policy, "full", [SOLVED[0], UNSOLVED], temperature=1.0)
    assert stats["generate_calls"] < stats["turns"]  # the two episodes' turns were generated together
    for ep in eps:
        assert ep.turns and ep.error is None
        replies = [m["content"] for m in ep.messages if m["role"] == "assistant"]
        assert replies == [tok.decode(t.completion_ids, skip_special_tokens=True) for t in ep.turns]
        s = full_sample(ep, tok.pad_token_id)
        assert s.prompt_ids == chat_ids(tok, ep.messages[:2])  # system + task, rendered once
        sampled = [i for i, m in zip(s.completion_ids, s.env_mask, strict=True) if m]
        assert sampled == [i for t in ep.turns for i in t.completion_ids]  # no re-tokenisation
        env_text = tok.decode([i for i, m in zip(s.completion_ids, s.env_mask, strict=True) if not m])
        msgs = ep.messages
        seen = [m for m, nxt in zip(msgs[3:], msgs[4:], strict=False) if nxt["role"] == "assistant"]
        assert seen and all(m["content"] in env_text for m in seen)  # observations the policy saw: masked
        # the recorded sampling log-probs are the model's log-probs of those exact tokens
        ids = torch.tensor([s.prompt_ids + s.completion_ids])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(s.prompt_ids) - 1 : -1]
        lp = logits.log_softmax(-1).gather(-1, torch.tensor(s.completion_ids)[:, None])[:, 0]
        mask = torch.tensor(s.env_mask, dtype=torch.bool)
        assert torch.allclose(lp[mask], torch.tensor(s.logprobs)[mask], atol=1e-3)


def test_srl_context_is_one_sample_per_turn_with_what_the_agent_showed(suite, policy):
    _, tok = policy
    (eps, _), agent = episodes(suite, policy, "srl", [SOLVED[1]])
    ep = eps[0]
    assert ep.status == "submitted" and ep.reward == 1.0
    samples = turn_samples(ep)
    assert len(samples) == len(ep.turns) > 2
    asked = [i for i, m in enumerate(ep.messages) if m["role"] == "assistant"]
    for s, i in zip(samples, asked, strict=True):
        assert s.prompt_ids == chat_ids(tok, select_context(ep.messages[:i], agent.context))
        assert tok.decode(s.completion_ids, skip_special_tokens=True) == ep.messages[i]["content"]
        assert s.env_mask == [1] * len(s.completion_ids)


def test_a_sandbox_that_cannot_start_scores_zero_and_the_others_go_on(suite, policy):
    (eps, stats), _ = episodes(suite, policy, "srl", ["broken-sandbox", SOLVED[1]])
    assert eps[0].status == "sandbox_error" and eps[0].reward == 0.0 and eps[0].error and not eps[0].turns
    assert eps[1].status == "submitted" and eps[1].reward == 1.0
    assert stats["failed_episodes"] == 1


def test_the_first_turn_is_generated_while_the_sandbox_starts(suite, policy, monkeypatch):
    """The first prompt needs only the task: its turn does not wait for the sandbox (slowed to 1 s
    here); the agent's first command does, and the episode ends as it would have."""
    import swesrl.envs.local as local_env
    import swesrl.training.rollout as rollout

    events = []
    real_start, real_generate = rollout.env_for_instance, rollout.TurnEngine.generate

    def slow_start(*a, **k):
        time.sleep(1.0)
        env = real_start(*a, **k)
        events.append(("sandbox ready", time.monotonic()))
        return env

    def generate(self, prompt_ids):
        out = real_generate(self, prompt_ids)
        events.append(("turn", time.monotonic()))
        return out

    before = set(map(id, local_env._live))  # sandboxes other tests of this process still hold
    monkeypatch.setattr(rollout, "env_for_instance", slow_start)
    monkeypatch.setattr(rollout.TurnEngine, "generate", generate)
    (eps, _), _ = episodes(suite, policy, "srl", [SOLVED[1]])
    assert [e for e, _ in events[:2]] == ["turn", "sandbox ready"]
    assert eps[0].status == "submitted" and eps[0].reward == 1.0 and len(eps[0].turns) >= 2
    assert set(map(id, local_env._live)) <= before  # its own and the grader's sandboxes were closed


def test_f2p_fraction_reward_is_gated_on_pass_to_pass():
    status = {"FAIL_TO_PASS": {"success": ["a", "b"], "failure": ["c"]}, "PASS_TO_PASS": {"success": ["d"]}}
    assert grade_reward({"resolved": False, "tests_status": status}, "f2p_fraction") == pytest.approx(2 / 3)
    status["PASS_TO_PASS"]["failure"] = ["e"]
    assert grade_reward({"resolved": False, "tests_status": status}, "f2p_fraction") == 0.0
    assert grade_reward({"resolved": False, "tests_status": None}, "f2p_fraction") == 0.0
    assert grade_reward({"resolved": False, "tests_status": status}, "resolved") == 0.0


def overrides(suite, out, *extra):
    return [
        f"model.path={TINY}",
        f"data.instances={suite}",
        "data.split=null",
        f"output.dir={out}",
        "output.plots=false",
        "agent=[agent.yaml, agent_tiny.yaml, step_limit=6]",
        "train.max_completion_length=224",
        "train.temperature=1.0",
        "train.learning_rate=1e-3",
        *extra,
    ]


def rows(out):
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def changed(out):
    before, after = (
        load_file(str(TINY / "model.safetensors")),
        load_file(str(Path(out) / "model.safetensors")),
    )
    return any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_rlvr_step_updates_logs_kl_survives_a_broken_sandbox_and_resumes(suite, tmp_path):
    out = tmp_path / "full"
    ids = f"data.ids=[{SOLVED[0]}, broken-sandbox]"
    common = [ids, "agent=[agent.yaml, agent_tiny.yaml, step_limit=6, context.kind=full]", "train.beta=0.1"]
    s1 = train_rlvr(load_rlvr_config("rlvr_tiny.yaml", overrides(suite, out, *common, "train.max_steps=1")))
    assert s1["global_step"] == 1 and s1["resumed_from"] is None
    m = rows(out)[0]
    assert m["rollout/episodes"] == 8 and m["rollout/failed_episodes"] >= 4  # the broken instance's group
    assert 0.5 < m["rollout/prefix_reuse"] < 1  # the 4 episodes of an instance share their first prompt
    assert 1 <= m["rollout/decode_rows_per_step"] <= 8 and m["rollout/decode_ms_per_step"] > 0
    assert math.isfinite(m["kl"]) and m["kl"] >= 0  # beta > 0: TRL's KL against the reference
    assert math.isfinite(m["loss"])
    if m["dynamic_sampling/kept_prompts"] > 0:  # the solvable instance's episodes differed in reward
        assert m["grad_norm"] > 0 and changed(out / "final")
    s2 = train_rlvr(load_rlvr_config("rlvr_tiny.yaml", overrides(suite, out, *common, "train.max_steps=2")))
    assert s2["resumed_from"].endswith("checkpoint-1") and s2["global_step"] == 2
    assert [r["step"] for r in rows(out) if "reward" in r] == [1, 2]


@pytest.mark.slow
def test_rlvr_srl_context_turn_samples_several_updates_per_batch(suite, tmp_path):
    out = tmp_path / "srl"
    cfg = load_rlvr_config(
        "rlvr_tiny.yaml",
        overrides(
            suite,
            out,
            f"data.ids=[{SOLVED[0]}, {SOLVED[1]}]",
            "train.max_steps=2",
            "train.num_iterations=2",  # two updates per rollout batch: the ratio moves, clipping is live
            "dynamic_sampling.max_rounds=2",
        ),
    )
    s = train_rlvr(cfg)
    assert s["global_step"] == 2
    ms = [r for r in rows(out) if "reward" in r]
    assert all(math.isfinite(r["loss"]) for r in ms)
    rollout = [r for r in ms if "rollout/turn_samples" in r]
    assert rollout and all(r["rollout/turn_samples"] > r["rollout/episodes"] for r in rollout)
    assert any(r["dynamic_sampling/kept_prompts"] > 0 for r in ms)  # sampled episodes do differ
    # turns of groups with equal rewards (advantage 0) are not trained; the kept groups' turns are
    assert all(r["rollout/trained_turn_samples"] <= r["rollout/turn_samples"] for r in rollout)
    assert any(r["rollout/trained_turn_samples"] > 0 for r in rollout)
    assert changed(out / "final")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_turn_rows_are_the_same_on_every_process():
    """The srl context's turn samples differ in number between processes (episodes take different
    numbers of turns); TRL all-gathers per-row tensors of every micro-batch, so all pad to one count."""
    import doctest

    from swesrl.training import rlvr, rollout

    assert doctest.testmod(rlvr).failed == 0
    assert doctest.testmod(rollout).failed == 0
    # (turn samples per process, micro-batches per generation) -> rows on every process
    cases = {((12, 10), 1): 12, ((3, 17, 5), 4): 20, ((0, 1), 2): 2, ((8, 8), 8): 8, ((0, 0), 2): 2}
    for (counts, per_step), rows in cases.items():
        assert rlvr.turn_rows_per_process(list(counts), per_step) == rows


def test_length_sorted_micro_batches_keep_every_token_and_drop_padding():
    from swesrl.training.rlvr import length_sorted_micro_batches
    from swesrl.training.rollout import Sample

    gen = torch.Generator().manual_seed(0)
    lens = [(int(p), int(c)) for p, c in torch.randint(1, 60, (12, 2), generator=gen)] + [(1, 1)] * 4
    samples = [
        Sample(torch.randint(3, 99, (p,)).tolist(), torch.randint(3, 99, (c,)).tolist(), [0.5] * c, [1] * c)
        for p, c in lens
    ]
    samples[-1].env_mask = [0]  # a filler row: nothing to train
    P, C = max(p for p, _ in lens), max(c for _, c in lens)
    batch = {
        "prompt_ids": torch.tensor([[0] * (P - len(s.prompt_ids)) + s.prompt_ids for s in samples]),
        "prompt_mask": torch.tensor(
            [[0] * (P - len(s.prompt_ids)) + [1] * len(s.prompt_ids) for s in samples]
        ),
        "completion_ids": torch.tensor(
            [s.completion_ids + [0] * (C - len(s.completion_ids)) for s in samples]
        ),
        "completion_mask": torch.tensor([s.env_mask + [0] * (C - len(s.env_mask)) for s in samples]),
        "sampling_per_token_logps": torch.tensor(
            [s.logprobs + [0.0] * (C - len(s.logprobs)) for s in samples]
        ),
        "advantages": torch.arange(len(samples), dtype=torch.float32),
        "num_items_in_batch": torch.tensor(123),
    }
    parts = length_sorted_micro_batches(batch, 4)
    assert [len(m["advantages"]) for m in parts] == [4, 4, 4, 4]
    seen = []
    for m in parts:
        assert m["num_items_in_batch"] == 123
        assert (
            m["prompt_ids"].shape == m["prompt_mask"].shape and m["prompt_mask"][:, 0].any()
        )  # no empty column
        assert m["completion_ids"].shape == m["sampling_per_token_logps"].shape
        for r, a in enumerate(m["advantages"].long().tolist()):
            s, pm, cm = samples[a], m["prompt_mask"][r].bool(), m["completion_mask"][r].bool()
            assert m["prompt_ids"][r][pm].tolist() == s.prompt_ids
            assert m["completion_ids"][r][cm].tolist() == [
                i for i, k in zip(s.completion_ids, s.env_mask, strict=True) if k
            ]
            seen.append(a)
    assert sorted(seen) == list(range(len(samples)))
    padded = sum(m["prompt_ids"].numel() + m["completion_ids"].numel() for m in parts)
    assert padded < 0.8 * (batch["prompt_ids"].numel() + batch["completion_ids"].numel())


@pytest.mark.slow
def test_rlvr_under_accelerate_launch_on_two_processes(suite, tmp_path):
    out = tmp_path / "mp"
    env = {
        **os.environ,
        "ACCELERATE_USE_CPU": "true",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        *(sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"),
        *("--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"),
        *("--main_process_port", str(free_port())),
        str(HERE / "rlvr_multiprocess_run.py"),
        "rlvr_tiny.yaml",
        *overrides(
            suite,
            out,
            # one instance per process: one submits in ~4 turns, the other runs to the step limit, so
            # the processes hold different numbers of turn samples (the case that once aborted gloo)
            f"data.ids=[{SOLVED[0]}, {UNSOLVED}]",
            "train.num_generations=2",
            "train.micro_batch_size=2",
            "train.max_steps=1",
            "rollout.max_concurrent_episodes=2",
        ),
    ]
    try:
        r = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"2-process RLVR did not finish in {e.timeout} s:\n{(e.stderr or b'')[-3000:]!r}")
    assert r.returncode == 0, r.stderr[-5000:]
    ranks = [json.loads((out / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert [x["world_size"] for x in ranks] == [2, 2] and [x["global_step"] for x in ranks] == [1, 1]
    assert [x["main_process"] for x in ranks] == [True, False]
    m = [r for r in rows(out) if "reward" in r][0]
    assert m["rollout/episodes"] == 4  # 2 instances x 2 episodes, gathered over both processes
    # the srl context: each process trains the same number of rows, enough for the larger one's turns
    assert m["rollout/turn_samples"] > m["rollout/episodes"]
    # zero-advantage turns are not trained (exact with dapo, beta 0); the rest fit on 2 processes
    assert m["rollout/trained_turn_samples"] <= m["rollout/turn_samples"]
    assert m["rollout/turn_rows_per_process"] * 2 >= m["rollout/trained_turn_samples"]
    assert math.isfinite(m["loss"])
    assert (out / "final" / "model.safetensors").is_file()


def loss_grads(loss_type: str, keep: list[int]) -> list[torch.Tensor]:
    """Gradients of TRL's loss (the trainers' own) over rows `keep` of one batch whose rows 1 and 3
    have advantage 0, normalised by the token count of the whole batch."""
    from datasets import Dataset
    from trl import GRPOConfig

    from swesrl.training.srl import make_trainer_class

    model, tok = load_policy(ModelConfig(path=str(TINY), dtype="float32"))
    args = GRPOConfig(
        output_dir="/tmp/swesrl-zero-adv",
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=12,
        loss_type=loss_type,
        report_to="none",
        use_cpu=True,
        bf16=False,
    )
    trainer = make_trainer_class()(
        model=model,
        reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
        args=args,
        train_dataset=Dataset.from_list([{"prompt": [{"role": "user", "content": "hi"}]}] * 4),
        processing_class=tok,
    )
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, 1000, (5, 20), generator=g)
    completion = torch.randint(3, 1000, (5, 12), generator=g)
    completion_mask = torch.ones(5, 12, dtype=torch.long)
    completion_mask[2, 7:] = 0
    batch = {
        "prompt_ids": prompt,
        "prompt_mask": torch.ones_like(prompt),
        "completion_ids": completion,
        "completion_mask": completion_mask,
        "advantages": torch.tensor([0.7, 0.0, -1.2, 0.0, 0.4]),
        "num_items_in_batch": completion_mask.sum(),
    }
    part = {k: v[keep] if v.dim() else v for k, v in batch.items()}
    model.zero_grad()
    trainer.compute_loss(model, part).backward()
    return [p.grad.clone() for p in model.parameters()]


def test_skipping_zero_advantage_turns_leaves_the_dapo_gradient_as_it_is():
    """RLVR drops turns with advantage 0 before the update when that is exact (beta 0, a loss divided
    by the batch's token count): TRL's dapo loss on the other rows, divided by every row's tokens,
    has the gradient of the whole batch; a loss averaged over rows (grpo) does not, and is not
    skipped (`RLVRTrainer._zero_advantage_is_no_gradient`)."""
    from types import SimpleNamespace

    from swesrl.training.rlvr import make_rlvr_trainer_class

    full, part = loss_grads("dapo", [0, 1, 2, 3, 4]), loss_grads("dapo", [0, 2, 4])
    scale = max(g.abs().max().item() for g in full)
    assert scale > 0
    assert all(torch.allclose(a, b, atol=1e-6 * scale) for a, b in zip(full, part, strict=True))
    grpo_full, grpo_part = loss_grads("grpo", [0, 1, 2, 3, 4]), loss_grads("grpo", [0, 2, 4])
    assert not all(torch.allclose(a, b, atol=1e-3 * scale) for a, b in zip(grpo_full, grpo_part, strict=True))

    exact = make_rlvr_trainer_class()._zero_advantage_is_no_gradient
    base = dict(beta=0.0, top_entropy_quantile=1.0, loss_type="dapo")
    assert exact(SimpleNamespace(**base))
    assert exact(SimpleNamespace(**{**base, "loss_type": "cispo"}))
    for change in (
        {"beta": 0.04},
        {"top_entropy_quantile": 0.2},
        {"loss_type": "grpo"},
        {"loss_type": "bnpo"},
    ):
        assert not exact(SimpleNamespace(**{**base, **change}))
