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


def test_run_in_threads_yields_results_and_errors_and_abandons_on_close():
    import threading
    import time

    from swesrl.utils import run_in_threads

    def fn(x):
        if x == 3:
            raise ValueError("three")
        return x * 10

    got = {
        item: (res, type(exc).__name__ if exc else None) for item, res, exc in run_in_threads(fn, range(5), 2)
    }
    assert got == {0: (0, None), 1: (10, None), 2: (20, None), 3: (None, "ValueError"), 4: (40, None)}

    gate, started = threading.Event(), []

    def slow(x):
        started.append(x)
        if x:  # item 0 returns at once, the others wait at the gate
            gate.wait(5)
        return x

    gen = run_in_threads(slow, range(10), 1)
    t0 = time.monotonic()
    assert next(gen)[0] == 0
    time.sleep(0.2)  # the worker is blocked in item 1
    gen.close()  # returns at once; item 1 is abandoned and nothing after it starts
    assert time.monotonic() - t0 < 1
    gate.set()
    time.sleep(0.2)
    assert started == [0, 1]
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("swesrl-worker"))


def test_iter_jsonl_names_the_first_byte_that_is_not_utf8(tmp_path):
    p = tmp_path / "x.jsonl"
    data = b'{"a": 1}\n{"b": "caf\xe9"}\n'
    p.write_bytes(data)
    rows = iter_jsonl(p)
    assert next(rows) == {"a": 1}
    with pytest.raises(UserError) as e:
        next(rows)
    at = data.index(b"\xe9")
    assert str(e.value) == f"{p}: not UTF-8 text (byte 0xe9 at offset {at}, line 2)"
    p.write_bytes('{"a": "x"}\n'.encode("utf-16"))
    with pytest.raises(UserError, match=r"byte 0xff at offset 0, line 1\); it looks like UTF-16"):
        list(iter_jsonl(p))
    p.write_bytes(b'{"a": "\xe2\x80\xa8"}\r\n{"b": 2}')  # U+2028 inside a string, CRLF, no final newline
    assert list(iter_jsonl(p)) == [{"a": "\u2028"}, {"b": 2}]


def test_parallel_map_skips_done_items_and_reports_progress():
    from swesrl.utils import parallel_map

    reports = []
    done = {1, 3}
    out = {
        item: res
        for item, res, exc in parallel_map(
            lambda x: x * 10,
            range(5),
            2,
            done=lambda x: x in done,
            label="work",
            on_progress=lambda *a: reports.append(a),
            status=lambda: "ok",
        )
    }
    assert out == {0: 0, 2: 20, 4: 40}
    assert reports[0] == ("work", 0, 3, "") and [r[1] for r in reports[1:]] == [1, 2, 3]
    assert all(r[0] == "work" and r[2] == 3 for r in reports) and reports[-1][3] == "ok"
    # nothing to do: nothing runs, nothing is reported
    reports.clear()
    assert (
        list(parallel_map(lambda x: x, [1], done=lambda x: True, on_progress=lambda *a: reports.append(a)))
        == []
    )
    assert reports == []
