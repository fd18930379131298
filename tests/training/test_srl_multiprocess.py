"""SRL dynamic sampling on 2 CPU processes (gloo): real launch, real trainer, real collectives.

`accelerate launch --cpu` starts one process unless mpirun is set up, so the test launches with
`accelerate launch --multi_gpu` and ACCELERATE_USE_CPU=true: torchrun underneath, accelerate's
MULTI_CPU state with the gloo backend. The run script (srl_multiprocess_run.py) gives every
group on rank 1 all-equal rewards and every group on rank 0 distinct ones.
"""

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from swesrl.training.tiny import _EXAMPLE_TURNS, build_tiny_model

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CMDS = ["ls", "ls -la", "cat setup.py", "git status", "grep -rn foo src", "python3 -m pytest -q"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_dynamic_sampling_refills_and_rebalances_across_two_processes(tmp_path):
    rows = []
    for i in range(12):
        act = f"<function=bash>\n<parameter=command>{CMDS[i % len(CMDS)]}</parameter>\n</function>"
        prompt = [{"role": "user", "content": f"Run {CMDS[i % len(CMDS)]}"}]
        rows.append({"instance_id": f"t{i}", "step": 0, "prompt": prompt, "expert_action": act})
    (tmp_path / "srl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = build_tiny_model(
        tmp_path / "tiny", texts=_EXAMPLE_TURNS * 4, vocab_size=400, hidden_size=32, num_layers=1, num_heads=2
    )
    out = tmp_path / "run"
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
        str(HERE / "srl_multiprocess_run.py"),
        *("--config", "srl_tiny.yaml"),
        *(
            "-c",
            f"model.path={model}",
            "-c",
            f"data.path={tmp_path / 'srl.jsonl'}",
            "-c",
            f"output.dir={out}",
        ),
        # B=4 prompts x G=4 over 2 processes: 2 groups (8 rows) per process, one micro-batch
        *(
            "-c",
            "train.prompts_per_step=4",
            "-c",
            "train.num_generations=4",
            "-c",
            "train.micro_batch_size=8",
        ),
        *("-c", "train.max_steps=2", "-c", "train.max_completion_length=8"),
        *("-c", "dynamic_sampling.max_rounds=3", "-c", "output.save_steps=100"),
        *("-c", "output.report_to=[none]", "-c", "output.plots=false"),
    ]
    try:
        r = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired as e:  # a hang (collectives out of step) ends here, not in CI's timeout
        pytest.fail(f"2-process SRL run did not finish in {e.timeout} s:\n{(e.stderr or b'')[-3000:]!r}")
    assert r.returncode == 0, r.stderr[-5000:]

    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if "dynamic_sampling/filtered_fraction" in m]
    assert [m["step"] for m in steps] == [1, 2]
    for m in steps:
        # Round 1: rank 0's 2 groups kept, rank 1's 2 filtered. Refill: 3 more prompts per process
        # (2 missing at a keep rate of 1/2, split over 2 processes, +1); rank 0 keeps its 3.
        assert m["dynamic_sampling/filtered_fraction"] == pytest.approx(0.5)
        assert m["dynamic_sampling/rounds"] == 2
        assert m["dynamic_sampling/kept_prompts"] == 4  # B reached
        assert m["dynamic_sampling/moved_prompts"] == 2  # rank 0's surplus went to rank 1
        assert math.isfinite(m["loss"]) and m["grad_norm"] > 0

    ranks = [json.loads((out / f"rank{i}.json").read_text()) for i in (0, 1)]
    for rank in ranks:
        assert rank["world_size"] == 2 and rank["global_step"] == 2
        assert rank["losses_finite"] and len(rank["losses"]) == 2
        # the same batch shape everywhere, and only groups with reward variance: rank 1 generated none
        # itself, so its 2 groups came from rank 0
        assert [(b["rows"], b["groups_with_signal"]) for b in rank["batches"]] == [(8, 2), (8, 2)]
    assert [rank["main_process"] for rank in ranks] == [True, False]  # one process writes files, prints
    tokens = [[b["num_items_in_batch"] for b in rank["batches"]] for rank in ranks]
    assert tokens[0] == tokens[1] and all(t > 0 for t in tokens[0])  # the global loss normaliser
    assert (out / "final" / "model.safetensors").is_file()


def test_prompts_per_step_must_split_into_whole_groups_per_process(monkeypatch):
    from swesrl.training.srl import grpo_args, load_srl_config
    from swesrl.utils import UserError

    cfg = load_srl_config(
        "srl_tiny.yaml", ["train.prompts_per_step=3", "train.num_generations=4", "train.micro_batch_size=2"]
    )
    monkeypatch.setenv("WORLD_SIZE", "2")  # 12 completions = 3 passes of 2 x 2, but 3 prompts on 2 processes
    with pytest.raises(
        UserError, match=r"prompts_per_step \(3\) to be a multiple of the number of processes"
    ):
        grpo_args(cfg)
