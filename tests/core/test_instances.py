"""The one instance loader: strict (every command but eval) and lenient (eval) reading of the same files."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from swesrl.core.instances import load_instances, read_instances
from swesrl.utils import UserError

ROW = {
    "instance_id": "o__r-1",
    "repo": "o/r",
    "base_commit": "abc",
    "problem_statement": "bug",
    "FAIL_TO_PASS": '["t::a"]',  # the Hub's JSON-string form
    "PASS_TO_PASS": [],
}


def write(path, rows: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_jsonl_json_and_parquet_give_the_same_normalised_instances(tmp_path):
    write(tmp_path / "i.jsonl", [ROW])
    (tmp_path / "i.json").write_text(json.dumps([ROW]))
    pd.DataFrame([ROW]).to_parquet(tmp_path / "i.parquet")
    got = [load_instances(tmp_path / f"i.{ext}") for ext in ("jsonl", "json", "parquet")]
    assert got[0] == got[1] == got[2]
    assert got[0][0]["FAIL_TO_PASS"] == ["t::a"] and got[0][0]["patch"] == ""


@pytest.mark.parametrize(
    "rows, message",
    [
        ([ROW, "{oops"], r":2: not valid JSON"),
        ([ROW, {**ROW, "repo": ""}], "missing repo"),
        ([ROW, dict(ROW)], "duplicate instance_id o__r-1"),
        ([], "no instances"),
    ],
    ids=["bad-json", "missing-field", "duplicate", "empty"],
)
def test_strict_stops_at_the_first_problem_in_one_line(tmp_path, rows, message):
    write(tmp_path / "i.jsonl", rows)
    with pytest.raises(UserError, match=message):
        load_instances(tmp_path / "i.jsonl")


def test_lenient_reports_and_skips_what_strict_refuses(tmp_path):
    two = {**ROW, "instance_id": "o__r-2"}
    rows = [
        ROW,
        "{oops",
        [1],
        {**ROW, "instance_id": "o__r-3", "repo": ""},
        dict(ROW),
        two,
        {**two, "FAIL_TO_PASS": []},
    ]
    write(tmp_path / "i.jsonl", rows)
    got, problems = read_instances(tmp_path / "i.jsonl", lenient=True)
    assert [i["instance_id"] for i in got] == ["o__r-1"]  # identical repeat merged, conflicting one dropped
    assert len(problems) == 4 and all(p.endswith("skipped") for p in problems), problems
    assert ":2: not valid JSON" in problems[0] and ":3: not a JSON object" in problems[1]
    assert "missing repo" in problems[2] and "o__r-2 appears several times" in problems[3]
    write(tmp_path / "bad.jsonl", ["{oops"])
    with pytest.raises(UserError, match="no usable instances"):
        read_instances(tmp_path / "bad.jsonl", lenient=True)
    with pytest.raises(UserError, match="instances file not found"):
        read_instances(tmp_path / "none.jsonl", lenient=True)
