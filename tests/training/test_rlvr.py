"""RLVR: the masked multi-turn update on the tiny model, and real episodes in bubblewrap sandboxes."""

import json
import shutil

import pytest
import torch

from swesrl.agent.context import ContextPolicy
from swesrl.training.rlvr import (
    RLVRTrainConfig,
    encode_turn,
    episode_turns,
    load_rlvr_config,
    train_rlvr,
    update_policy,
)
from swesrl.training.srl import ModelConfig, load_policy
from swesrl.training.tiny import build_tiny_model

LS = "<think>look</think>\n<function=bash>\n<parameter=command>ls</parameter>\n</function>"
SUBMIT = "<think>done</think>\n<function=submit>\n</function>"


def traj(obs: str) -> dict:
    return {
        "messages": [
            {"role": "system", "content": "You fix bugs."},
            {"role": "user", "content": "Fix the bug."},
            {"role": "assistant", "content": LS},
            {"role": "user", "content": f"OBSERVATION:\n{obs}"},
            {"role": "assistant", "content": SUBMIT},
        ]
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("rlvr") / "tiny", seed=0)


def test_turns_train_only_the_policys_tokens(tiny):
    _, tok = load_policy(ModelConfig(path=str(tiny)))
    turns = episode_turns(traj("a.py b.py")["messages"], ContextPolicy(kind="full"))
    assert [r for _, r in turns] == [LS, SUBMIT]
    assert turns[1][0][-1]["content"].startswith("OBSERVATION:")  # the 2nd turn saw the observation
    ids, mask = encode_turn(tok, *turns[1])
    trained = tok.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert trained == SUBMIT + "<|im_end|>"
    assert "OBSERVATION" in tok.decode([i for i, m in zip(ids, mask, strict=True) if not m])


def test_update_moves_toward_the_resolved_episode(tiny):
    model, tok = load_policy(ModelConfig(path=str(tiny)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    good, bad = traj("ok"), traj("ok")
    bad["messages"][4]["content"] = LS
    kept = [(good, 1.0, 1.0), (bad, 0.0, -1.0)]
    cfg = RLVRTrainConfig(micro_batch_size=2)

    def logp(text):
        ids, mask = encode_turn(tok, traj("ok")["messages"][:4], text)
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids])).logits[0, :-1].log_softmax(-1)
        tgt = torch.tensor(ids[1:])
        return (out.gather(-1, tgt[:, None])[:, 0] * torch.tensor(mask[1:])).sum().item()

    gap = logp(SUBMIT) - logp(LS)
    for _ in range(3):
        stats = update_policy(model, tok, opt, kept, ContextPolicy(kind="full"), cfg, "cpu")
    assert stats["trained_turns"] == 4 and stats["trained_tokens"] > 0 and stats["grad_norm"] > 0
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert logp(SUBMIT) - logp(LS) > gap  # the resolved episode's final action became likelier


@pytest.mark.slow
def test_rlvr_step_runs_real_episodes_and_resumes(tiny, tmp_path):
    if not shutil.which("bwrap"):
        pytest.skip("bubblewrap not installed")
    from swesrl.tasks import build_suite

    instances = build_suite(tmp_path / "suite", n=2, seed=5)
    out = tmp_path / "rlvr"
    overrides = [
        f"model.path={tiny}",
        f"data.instances={instances}",
        "data.split=null",
        f"output.dir={out}",
        "train.prompts_per_step=1",
        "train.max_steps=1",
        "train.max_new_tokens=24",
        "agent=[agent.yaml, agent_tiny.yaml]",
    ]
    cfg = load_rlvr_config(
        "rlvr_tiny.yaml", [*overrides, "agent=[agent.yaml, agent_tiny.yaml, step_limit=2]"]
    )
    s = train_rlvr(cfg)
    assert s["global_step"] == 1
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["episodes"] == 2 and rows[0]["reward"] in (0.0, 0.5, 1.0)
    assert 0.0 <= rows[0]["filtered_fraction"] <= 1.0
    s2 = train_rlvr(
        load_rlvr_config(
            "rlvr_tiny.yaml",
            [*overrides, "train.max_steps=2", "agent=[agent.yaml, agent_tiny.yaml, step_limit=2]"],
        )
    )
    assert s2["global_step"] == 2
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2]
