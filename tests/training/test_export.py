import importlib.util
import json
import subprocess
import sys

import pyarrow.parquet as pq

from swesrl.training.export import export_verl
from swesrl.training.rewards import srl_reward

EXPERT = "<function=str_replace_editor>\n<parameter=command>view</parameter>\n<parameter=path>/testbed/a.py</parameter>\n</function>"


def test_export_verl_rows_and_compute_score(tmp_path):
    rows = [
        {
            "instance_id": f"i{k}",
            "step": k,
            "n_steps": 5,
            "prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": f"task {k}"}],
            "expert_action": EXPERT.replace("a.py", f"m{k}.py"),
            "expert_thought": "t",
        }
        for k in range(10)
    ]
    data = tmp_path / "srl.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = export_verl(data, tmp_path / "verl", val_fraction=0.2)
    assert summary["train"] == 8 and summary["test"] == 2
    table = pq.read_table(tmp_path / "verl" / "train.parquet").to_pylist()
    assert set(table[0]) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    assert table[0]["reward_model"]["style"] == "rule"
    assert table[0]["prompt"][1]["role"] == "user"
    by_id = {r["instance_id"]: r for r in rows}
    for t in table:
        assert t["reward_model"]["ground_truth"] == by_id[t["extra_info"]["instance_id"]]["expert_action"]

    spec = importlib.util.spec_from_file_location("srl_reward_mod", tmp_path / "verl" / "srl_reward.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    gt = table[0]["reward_model"]["ground_truth"]
    solutions = [
        "<think>look</think>\n" + gt,
        "<think>look</think>\n" + gt.replace("view", "create"),
        "<think>look</think>\n" + EXPERT,
        "<think>x</think> nothing",
        gt,
        "<think>a</think><function=bash>\n<parameter=command>cat /testbed/a.py</parameter>\n</function>",
    ]
    for s in solutions:
        assert (
            mod.compute_score(table[0]["data_source"], s, gt, table[0]["extra_info"])
            == srl_reward([s], [gt])[0]
        )


def test_export_cli(tmp_path):
    data = tmp_path / "srl.jsonl"
    data.write_text(
        json.dumps({"prompt": [{"role": "user", "content": "x"}], "expert_action": EXPERT}) + "\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "swesrl", "export", "verl", "--data", str(data), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "train.parquet").is_file() and "compute_score" in r.stdout
