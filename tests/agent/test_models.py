"""Model backends: a tiny real transformers model on CPU, a real HTTP server speaking the chat
completions API, and replay of recorded trajectories."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from swesrl.agent.loop import load_agent_config, run_agent
from swesrl.agent.models import HFModel, OpenAIModel, ReplayModel, cut_at_stop, get_model
from swesrl.core.actions import format_action, parse_action
from swesrl.envs import env_for_instance
from swesrl.utils import UserError

MESSAGES = [{"role": "system", "content": "You fix bugs."}, {"role": "user", "content": "add() subtracts."}]


@pytest.fixture(scope="module")
def hf_model(tiny_model_dir) -> HFModel:
    return get_model(f"hf:{tiny_model_dir}", max_new_tokens=12)


def test_get_model_rejects_unknown_specs(tmp_path):
    for spec in ("gpt4", "foo:bar", "hf:", "openai:nohttp#m", "openai:http://localhost:1/v1"):
        with pytest.raises(UserError):
            get_model(spec)
    with pytest.raises(UserError, match="not found"):
        get_model(f"replay:{tmp_path / 'missing.jsonl'}")
    with pytest.raises(UserError, match="cannot load model"):
        get_model(f"hf:{tmp_path}")


def test_cut_at_stop():
    assert cut_at_stop("a<function=submit>\n</function> trailing") == "a<function=submit>\n</function>"
    assert cut_at_stop("no call") == "no call"


def test_hf_generates_n_samples_and_counts_tokens(hf_model):
    outs = hf_model.generate(MESSAGES, n=3, temperature=1.0, seed=0)
    assert len(outs) == 3 and all(isinstance(o, str) for o in outs)
    assert hf_model.generate(MESSAGES, temperature=0) == hf_model.generate(MESSAGES, temperature=0)
    assert 10 < hf_model.count_tokens(MESSAGES) < 100


def test_hf_concurrent_calls_run_as_one_batch(hf_model):
    calls = []
    real = hf_model.generate_batch

    def counting(convs, n=1, **kw):
        calls.append(len(convs))
        return real(convs, n, **kw)

    hf_model.generate_batch = counting
    prompts = [[*MESSAGES[:1], {"role": "user", "content": f"task {i}"}] for i in range(4)]
    results = [None] * 4
    try:
        with hf_model._lock:  # hold the model busy until every thread has queued its request
            threads = [
                threading.Thread(
                    target=lambda i=i: results.__setitem__(i, hf_model.generate(prompts[i], temperature=0))
                )
                for i in range(4)
            ]
            for t in threads:
                t.start()
            while len(hf_model._pending) < 4:
                time.sleep(0.01)
        for t in threads:
            t.join()
    finally:
        del hf_model.generate_batch
    assert calls == [4]
    assert all(isinstance(r, list) and len(r) == 1 for r in results)


def test_hf_model_runs_the_loop_on_cpu(hf_model, suite, tmp_path):
    config = load_agent_config(["max_format_errors=2", "sampling.temperature=0", "context.kind=full"])
    inst = suite["instances"][0]
    with env_for_instance(inst, config.sandbox, mirror=suite["mirror"]) as env:
        traj = run_agent(inst, hf_model, env, config, traj_path=tmp_path / "traj.json")
    assert traj["info"]["exit_status"] == "format_errors"  # random weights: no well-formed call
    assert traj["info"]["n_steps"] == 2
    assert traj["info"]["model"] == hf_model.name
    roles = [m["role"] for m in traj["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert traj["messages"][3]["content"].startswith("Your last response was not formatted correctly")
    assert json.loads((tmp_path / "traj.json").read_text())["info"]["exit_status"] == "format_errors"


class ChatServer:
    """A real HTTP server speaking /v1/chat/completions; replies from a script, can fail first.

    A reply is a text (the server applies the stop strings and drops them, like OpenAI and vLLM) or a
    message dict sent as it is (its `finish_reason` and `stop_reason` go to the choice).
    `honour_n=False` answers one choice whatever `n` says, like `transformers serve`."""

    def __init__(self, replies: list, failures: list[int] | None = None, honour_n: bool = True):
        self.replies, self.failures, self.requests = list(replies), list(failures or []), []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"data": [{"id": "tiny"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                if server.failures:
                    return self._send(server.failures.pop(0), {"error": "busy"})
                reply = server.replies.pop(0)
                extra = {}
                if isinstance(reply, dict):
                    finish = reply.pop("finish_reason", "stop")
                    if "stop_reason" in reply:
                        extra["stop_reason"] = reply.pop("stop_reason")
                    message = {"role": "assistant", **reply}
                else:
                    text, finish = reply, "length"
                    for s in body.get("stop") or []:
                        if s in text:
                            text, finish = text[: text.index(s)], "stop"
                    message = {"role": "assistant", "content": text}
                choices = [
                    {"index": i, "message": message, "finish_reason": finish, **extra}
                    for i in range(body.get("n", 1) if server.honour_n else 1)
                ]
                self._send(200, {"id": "x", "object": "chat.completion", "choices": choices})

        self.honour_n = honour_n
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_openai_backend_restores_stop_string_and_retries():
    call = format_action("bash", {"command": "ls"})
    server = ChatServer(["<think>look</think>\n" + call + "\nignored", call], failures=[429, 503])
    try:
        model = get_model(f"openai:{server.url}#tiny", backoff=0.01)
        assert isinstance(model, OpenAIModel)
        model.ping()
        assert (
            model.generate(MESSAGES, n=2, temperature=0.5, max_new_tokens=64)
            == ["<think>look</think>\n" + call] * 2
        )
        req = server.requests[-1]
        assert len(server.requests) == 3 and req["path"] == "/v1/chat/completions"
        assert (
            req["model"] == "tiny" and req["n"] == 2 and req["max_tokens"] == 64 and req["temperature"] == 0.5
        )
        assert req["stop"] == ["</function>"] and req["messages"] == MESSAGES
        assert req["auth"].startswith("Bearer ")
    finally:
        server.close()


def test_openai_backend_folds_reasoning_fields_back():
    call = format_action("bash", {"command": "ls"})
    thought = "<think>\nlook\n</think>\n"
    replies = [
        # transformers serve: reasoning split off and stripped, the stop string kept, text after it too
        {"content": call + "\nmore", "reasoning_content": "look"},
        # vLLM (newer): `reasoning`, whitespace kept, the stop string dropped
        {"content": "\n" + call[: -len("</function>")], "reasoning": "\nlook\n"},
        # cut off mid-thought (max_tokens): no content, so most likely no </think> either
        {"content": "", "reasoning_content": "lo", "finish_reason": "length"},
        # a thought and then the end of the turn, no call
        {"content": None, "reasoning_content": "look"},
        # content that holds its own <think> is kept as it is; an empty reasoning field is no thought
        {"content": thought + call, "reasoning_content": "look"},
        {"content": call, "reasoning_content": ""},
        # vLLM's qwen3 parser: no </think> before the call, so all of it is "reasoning"; stop string dropped
        {"content": None, "reasoning": call[: -len("</function>")], "stop_reason": "</function>"},
        # vLLM: the turn ended (stop_reason: the end-of-turn token) inside an unclosed call
        {"content": "\n<function=bash>", "reasoning": "look", "stop_reason": 7},
    ]
    server = ChatServer(replies)
    try:
        model = get_model(f"openai:{server.url}#tiny")
        outs = [model.generate(MESSAGES)[0] for _ in replies]
    finally:
        server.close()
    assert outs == [
        thought + call,
        thought + call,
        "<think>\nlo",
        "<think>\nlook\n</think>",
        thought + call,
        call,
        call,
        thought + "<function=bash>",
    ]
    assert [parse_action(o) for o in outs[:2]] == [("look", parse_action(call)[1])] * 2


def test_openai_backend_sends_one_request_per_sample_where_the_server_ignores_n():
    server = ChatServer([f"reply {i}" for i in range(7)], honour_n=False)
    try:
        model = get_model(f"openai:{server.url}#tiny")
        assert model.generate(MESSAGES, n=3, temperature=1.0, seed=7) == ["reply 0", "reply 1", "reply 2"]
        assert model.server_honours_n is False
        assert model.generate(MESSAGES, n=2, temperature=1.0) == ["reply 3", "reply 4"]
        assert model.generate(MESSAGES) == ["reply 5"]
        assert model.generate(MESSAGES, n=3, temperature=0) == ["reply 6"] * 3  # greedy: one request
    finally:
        server.close()
    sent = [(r.get("n"), r.get("seed")) for r in server.requests]
    assert sent == [(3, 7), (None, 8), (None, 9), (None, None), (None, None), (None, None), (None, None)]


def test_openai_backend_gives_up_on_client_errors_and_unreachable_servers():
    server = ChatServer([], failures=[400])
    try:
        with pytest.raises(RuntimeError, match="HTTP 400"):
            get_model(f"openai:{server.url}#tiny", backoff=0.01).generate(MESSAGES)
    finally:
        server.close()
    dead = get_model(f"openai:{server.url}#tiny", retries=1, backoff=0.01)
    with pytest.raises(UserError, match="cannot reach") as e:
        dead.generate(MESSAGES)
    assert "\n" not in str(e.value) and "2 attempts" in str(e.value)
    with pytest.raises(UserError, match="cannot reach"):
        dead.ping()


def test_openai_backend_drives_the_loop(suite):
    turns = [format_action("bash", {"command": "echo hi > /testbed/new.txt"}), format_action("submit")]
    server = ChatServer(turns)
    try:
        model = get_model(f"openai:{server.url}#tiny")
        config = load_agent_config()
        inst = suite["instances"][0]
        with env_for_instance(inst, config.sandbox, mirror=suite["mirror"]) as env:
            traj = run_agent(inst, model, env, config)
    finally:
        server.close()
    assert traj["info"]["exit_status"] == "submitted"
    assert "+hi" in traj["info"]["submission"] and "new.txt" in traj["info"]["submission"]


def test_replay_picks_the_trajectory_by_task_and_restarts(suite):
    model = ReplayModel(str(suite["experts"]))
    config = load_agent_config()
    from swesrl.agent.prompts import initial_messages

    first = initial_messages(config, suite["instances"][1])
    a = model.generate(first)
    b = model.generate([*first, {"role": "assistant", "content": a[0]}])
    assert "cat /testbed/pkg/calc.py" in a[0] and "str_replace" in b[0]
    assert model.generate(first) == a  # a new episode starts over
    with pytest.raises(LookupError, match="no recorded trajectory"):
        model.generate(initial_messages(config, suite["instances"][2]))
    only = ReplayModel(str(suite["experts"]), instance_id="acme__calc-2")
    assert only.generate(initial_messages(config, suite["instances"][2])) == a  # one trajectory: always it
