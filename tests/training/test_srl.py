"""SRL and SFT on the tiny model, on CPU: real TRL trainers, real generation, real rewards."""

import json
import math
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from swesrl.training.sft import load_sft_config, train_sft
from swesrl.training.srl import DynamicSamplingExhausted, load_srl_config, load_srl_dataset, train_srl
from swesrl.training.tiny import build_tiny_model
from swesrl.utils import UserError

CMDS = ["ls", "ls -la", "cat setup.py", "git status", "grep -rn foo src", "python3 -m pytest -q"]


def write_data(d):
    srl, sft = [], []
    for i in range(12):
        c = CMDS[i % len(CMDS)]
        act = f"<function=bash>\n<parameter=command>{c}</parameter>\n</function>"
        prompt = [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": f"Run {c}"}]
        srl.append({"instance_id": f"t{i}", "step": 0, "n_steps": 1, "prompt": prompt, "expert_action": act})
        sft.append({"messages": [*prompt, {"role": "assistant", "content": f"<think>look</think>\n{act}"}]})
    (d / "srl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in srl))
    (d / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("srl")
    write_data(d)
    build_tiny_model(d / "tiny", seed=0)
    return d


@pytest.fixture(scope="module")
def warm(work):
    """The tiny model after a short SFT, so that some completions follow the format."""
    cfg = load_sft_config(
        "sft_tiny.yaml",
        [
            f"model.path={work / 'tiny'}",
            f"data.path={work / 'sft.jsonl'}",
            f"output.dir={work / 'sft'}",
            "train.max_steps=40",
            "train.learning_rate=5e-3",
            "output.report_to=[none]",
            "output.plots=false",
        ],
    )
    summary = train_sft(cfg)
    assert summary["last_loss"] < summary["first_loss"] / 3
    return summary["final_model"]


def srl_cfg(work, model, out, *extra):
    return load_srl_config(
        "srl_tiny.yaml",
        [f"model.path={model}", f"data.path={work / 'srl.jsonl'}", f"output.dir={out}", *extra],
    )


def weights(path):
    return load_file(str(path / "model.safetensors"))


@pytest.mark.slow
def test_srl_updates_the_policy_logs_finite_reward_and_resumes(work, warm, tmp_path):
    out = tmp_path / "run"
    s1 = train_srl(
        srl_cfg(work, warm, out, "train.max_steps=2", "output.save_steps=1", "train.temperature=1.2")
    )
    assert s1["global_step"] == 2 and s1["resumed_from"] is None
    before, after = weights(__import__("pathlib").Path(warm)), weights(out / "final")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rewards = [r["reward"] for r in rows if "reward" in r]
    assert rewards and all(math.isfinite(r) and -1 <= r <= 1 for r in rewards)
    assert all("dynamic_sampling/filtered_fraction" in r for r in rows if "reward" in r)
    assert (out / "plots" / "reward.png").is_file()
    assert list((out).glob("**/events.out.tfevents.*"))  # TensorBoard by default

    s2 = train_srl(srl_cfg(work, warm, out, "train.max_steps=3", "output.save_steps=1"))
    assert s2["resumed_from"].endswith("checkpoint-2")
    assert s2["global_step"] == 3
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert 3 in steps and steps.count(1) == 1  # continued at step 3, did not redo steps 1-2


def test_all_equal_rewards_stop_with_a_clear_message(work, tmp_path):
    # The untrained tiny model never writes a well-formed action: every reward is -1.
    cfg = srl_cfg(
        work,
        work / "tiny",
        tmp_path / "run",
        "train.max_steps=1",
        "train.max_completion_length=8",
        "dynamic_sampling.max_rounds=2",
        "output.report_to=[none]",
    )
    with pytest.raises(DynamicSamplingExhausted, match=r"in 2 rounds had equal rewards"):
        train_srl(cfg)


def test_bad_config_dataset_and_model_are_one_line(work, tmp_path):
    with pytest.raises(UserError, match="train.learnin_rate"):
        load_srl_config("srl_tiny.yaml", ["train.learnin_rate=1"])
    with pytest.raises(UserError, match="train.max_steps"):
        load_srl_config("srl_tiny.yaml", ["train.max_steps=many"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": [{"role": "user", "content": "x"}], "expert": "y"}) + "\n")
    with pytest.raises(UserError, match=r"bad.jsonl:1: missing or invalid `expert_action`"):
        load_srl_dataset(bad)
    cfg = srl_cfg(work, tmp_path / "no-such-model", tmp_path / "run")
    with pytest.raises(UserError, match="model not found"):
        train_srl(cfg)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "swesrl",
            "train",
            "srl",
            "--config",
            "srl_tiny.yaml",
            "-c",
            "data.path=" + str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "expert_action" in r.stderr
