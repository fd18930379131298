from __future__ import annotations

import json
import os

import pytest

from swesrl.utils import UserError, append_jsonl, atomic_write_json, iter_jsonl, write_jsonl


def test_atomic_write_leaves_no_temp_files_and_normal_permissions(tmp_path):
    p = tmp_path / "sub" / "r.json"
    atomic_write_json(p, {"a": 1})
    atomic_write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert [f.name for f in p.parent.iterdir()] == ["r.json"]
    assert os.stat(p).st_mode & 0o044 == 0o044


def test_jsonl_round_trip_and_bad_lines(tmp_path):
    p = tmp_path / "x.jsonl"
    assert write_jsonl(p, [{"a": 1}, {"b": "é"}]) == 2
    append_jsonl(p, {"c": 3})
    assert list(iter_jsonl(p)) == [{"a": 1}, {"b": "é"}, {"c": 3}]
    p.write_text('{"a": 1}\n\n{"a": \n')
    with pytest.raises(UserError, match=r"x.jsonl:3: not valid JSON"):
        list(iter_jsonl(p))
    p.write_text("[1, 2]\n")
    with pytest.raises(UserError, match="expected a JSON object, got list"):
        list(iter_jsonl(p))
