"""Model backends. Protocol: `generate(messages, n=1, **sampling) -> list[str]`.

`get_model(spec)` picks one by prefix from `MODELS`:
- `hf:PATH`: transformers in this process (CPU or GPU); concurrent callers are batched together.
- `openai:BASE_URL#MODEL`: any OpenAI-compatible server (`vllm serve`, `transformers serve`, ...), plain
  HTTP; a reasoning field the server split off goes back into the reply as `<think>...</think>`.
- `replay:TRAJ`: replays the assistant turns of recorded trajectories (one per instance).

Generation stops after the first `</function>`: one reply is one action.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from swesrl.core.trajectories import extract_task, read_trajectories
from swesrl.utils import UserError

log = logging.getLogger(__name__)
STOP = "</function>"


@runtime_checkable
class Model(Protocol):
    name: str

    def generate(self, messages: list[dict], n: int = 1, **sampling: Any) -> list[str]: ...


def cut_at_stop(text: str) -> str:
    i = text.find(STOP)
    return text if i < 0 else text[: i + len(STOP)]


DTYPES = ("auto", "float32", "bfloat16", "float16")


def load_pretrained(path: str, dtype: str = "auto", attn_implementation: str | None = None):
    """(model, tokenizer) of a causal LM with a chat template: the one loader of the project (the
    `hf:` backend, the trainers, the benches). A missing folder, a folder without config.json, a
    tokenizer without a chat template or a load error is one `UserError` line; a tokenizer without a
    pad token pads with EOS."""
    local = Path(path).expanduser()
    if local.is_dir() and not (local / "config.json").is_file():
        raise UserError(f"cannot load model {path}: no config.json in that folder")
    if not local.exists() and (path.startswith(("/", ".", "~")) or path.count("/") > 1):
        raise UserError(f"model not found: {path} (no such folder, and not a Hub name owner/model)")
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; one of {', '.join(DTYPES)}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw: dict[str, Any] = {"dtype": dtype if dtype == "auto" else getattr(torch, dtype)}
    if attn_implementation:
        kw["attn_implementation"] = attn_implementation
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, **kw)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load model {path}: {str(e).splitlines()[0]}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise UserError(f"{path}: the tokenizer has no chat template")
    return model, tokenizer


class HFModel:
    """A transformers causal LM with its chat template; thread-safe, and calls made at the same time
    from several threads (`swesrl run --workers N`) run as one padded batch."""

    def __init__(
        self, path: str, device: str | None = None, dtype: str | None = None, max_new_tokens: int = 1024
    ):
        import torch

        self.name = f"hf:{path}"
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = dtype or ("bfloat16" if self.device == "cuda" else "float32")
        model, tokenizer = load_pretrained(path, dtype)
        self._serve(model.to(self.device), tokenizer, max_new_tokens)

    @classmethod
    def wrap(
        cls, model: Any, tokenizer: Any, name: str = "hf:in-memory", max_new_tokens: int = 1024
    ) -> HFModel:
        """Serve a model already in memory (e.g. one being trained) without loading it again."""
        self = cls.__new__(cls)
        self.name, self.device = name, str(model.device)
        self._serve(model, tokenizer, max_new_tokens)
        return self

    def _serve(self, model: Any, tokenizer: Any, max_new_tokens: int) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()
        self._pending: list[dict] = []
        self._pending_lock = threading.Lock()

    def count_tokens(self, messages: list[dict]) -> int:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, messages: list[dict], n: int = 1, **sampling: Any) -> list[str]:
        req = {"messages": messages, "n": n, "sampling": sampling, "out": None, "error": None}
        with self._pending_lock:
            self._pending.append(req)
        with self._lock:  # whoever gets the lock serves every request queued so far
            if req["out"] is None and req["error"] is None:
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                groups: dict[str, list[dict]] = {}
                for r in batch:
                    groups.setdefault(json.dumps([r["n"], r["sampling"]], sort_keys=True), []).append(r)
                for group in groups.values():
                    try:
                        outs = self.generate_batch(
                            [r["messages"] for r in group], group[0]["n"], **group[0]["sampling"]
                        )
                        for r, out in zip(group, outs, strict=True):
                            r["out"] = out
                    except Exception as e:
                        for r in group:
                            r["error"] = e
        if req["error"] is not None:
            raise req["error"]
        return req["out"]

    def generate_batch(self, conversations: list[list[dict]], n: int = 1, **sampling: Any) -> list[list[str]]:
        """n completions for each conversation, in one `model.generate` call."""
        import torch

        texts = [
            self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
            for c in conversations
        ]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(
            self.device
        )
        temperature = float(sampling.pop("temperature", 1.0))
        kwargs: dict[str, Any] = {
            "max_new_tokens": int(
                sampling.pop("max_new_tokens", sampling.pop("max_tokens", self.max_new_tokens))
            ),
            "num_return_sequences": n,
            "do_sample": temperature > 0,
            "stop_strings": [STOP],
            "tokenizer": self.tokenizer,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if temperature > 0:
            kwargs.update(temperature=temperature, top_p=float(sampling.pop("top_p", 1.0)))
            if "top_k" in sampling:
                kwargs["top_k"] = int(sampling.pop("top_k"))
        if "seed" in sampling:
            torch.manual_seed(int(sampling.pop("seed")))
        kwargs.update(sampling)
        with torch.no_grad():
            out = self.model.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1] :]
        decoded = [cut_at_stop(t) for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]
        return [decoded[i * n : (i + 1) * n] for i in range(len(conversations))]


class OpenAIModel:
    """POST /v1/chat/completions on any OpenAI-compatible server (`vllm serve`, `transformers serve`, ...).

    Replies come back in this project's format (`reply_text`): a reasoning field the server split off
    goes back into a `<think>` block before the content, and a stop string the server dropped is put
    back. Servers that ignore `n` (`transformers serve`) get one request per sample (seed, seed+1, ...
    when a seed is given, so the samples differ); greedy `n > 1` is one request (vLLM refuses it).
    429 / 5xx / connection errors are retried with exponential backoff; an unreachable server is a
    one-line UserError."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 600.0,
        retries: int = 4,
        backoff: float = 1.0,
    ):
        if not base_url.startswith(("http://", "https://")) or not model:
            raise UserError(
                f"openai model spec must look like openai:http://HOST:PORT/v1#MODEL, got {base_url}#{model}"
            )
        base = base_url.rstrip("/")
        if base.endswith("/chat/completions"):
            base = base[: -len("/chat/completions")]
        elif not base.endswith("/v1"):
            base += "/v1"
        self.base, self.model = base, model
        self.name = f"openai:{base}#{model}"
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY", "EMPTY")
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.server_honours_n: bool | None = None  # learnt from the first request with n > 1

    def _post(self, body: dict) -> dict:
        import requests

        url = f"{self.base}/chat/completions"
        headers = {"Authorization": f"Bearer {self.api_key}"}
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                r = requests.post(url, json=body, headers=headers, timeout=self.timeout)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as e:
                if last:
                    raise UserError(
                        f"cannot reach OpenAI-compatible server at {self.base} "
                        f"({type(e).__name__} after {self.retries + 1} attempts); is it running?"
                    ) from None
            else:
                if r.status_code == 200:
                    return r.json()
                if r.status_code != 429 and r.status_code < 500 or last:
                    raise RuntimeError(f"{url} answered HTTP {r.status_code}: {r.text[:300]}")
            delay = self.backoff * 2**attempt * (0.5 + random.random() / 2)
            log.warning("server %s busy or unreachable; retrying in %.1fs", self.base, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def ping(self) -> None:
        """Fail fast (UserError) when the server is not there at all."""
        import requests

        try:
            requests.get(f"{self.base}/models", timeout=10)
        except requests.RequestException as e:
            raise UserError(
                f"cannot reach OpenAI-compatible server at {self.base}: {type(e).__name__}"
            ) from None

    def generate(self, messages: list[dict], n: int = 1, **sampling: Any) -> list[str]:
        if "max_new_tokens" in sampling:
            sampling["max_tokens"] = sampling.pop("max_new_tokens")
        body = {"model": self.model, "messages": messages, "stop": [STOP], **sampling}
        if n > 1 and float(sampling.get("temperature", 1.0)) == 0:  # vLLM refuses n > 1 when greedy
            return self.generate(messages, **sampling) * n
        if n == 1 or self.server_honours_n is False:
            choices = []
        else:
            choices = self._post({**body, "n": n})["choices"]
            if self.server_honours_n is None:
                self.server_honours_n = len(choices) >= n
                if not self.server_honours_n:
                    log.info("server %s ignores n; sending one request per sample", self.base)
        for i in range(len(choices), n):
            seeded = {**body, "seed": int(body["seed"]) + i} if "seed" in body else body
            choices += self._post(seeded)["choices"][:1]
        return [reply_text(c) for c in choices[:n]]


REASONING_FIELDS = ("reasoning_content", "reasoning")  # transformers serve, older vLLM; vLLM 0.32


def reply_text(choice: dict) -> str:
    """One chat-completion choice as the model wrote it, cut after the first call.

    A reasoning field (`reasoning_content`; vLLM now says `reasoning`) goes back in front of the
    content as `<think>`, newline, the thought, newline, `</think>`, newline: servers strip or keep
    the whitespace around it, and this is the layout of the action format and of our checkpoints.
    Where the fields cannot tell, guess: no content after a reply ran out of tokens is a thought that
    never closed; a call inside the reasoning (no `</think>` before it: vLLM's qwen3 and deepseek_r1
    parsers file all text before `</think>` as reasoning, `<think>` or not) is the reply as the model
    wrote it, without tags."""
    message = choice.get("message") or {}
    content = message.get("content") or ""
    reasoning = next(
        (message[k] for k in REASONING_FIELDS if isinstance(message.get(k), str) and message[k]), ""
    )
    stopped = choice.get("finish_reason") == "stop"
    if reasoning and "<think>" not in content:
        if content.strip():
            content = f"<think>\n{reasoning.strip()}\n</think>\n{content.lstrip()}"
        elif "<function=" in reasoning:
            content = reasoning.lstrip()
        elif stopped:
            content = f"<think>\n{reasoning.strip()}\n</think>"
        else:
            content = "<think>\n" + reasoning.lstrip()
    # vLLM says which stop ended the reply (None or a token id: end of turn); others only "stop"
    by_stop_string = choice.get("stop_reason", STOP) == STOP
    if stopped and by_stop_string and "<function=" in content and STOP not in content:
        content += STOP
    return cut_at_stop(content)


def replay_turns(traj: dict) -> list[str]:
    """The assistant replies of a normalised trajectory: verbatim where the source was in our XML
    format, else its thought and canonical call (or the raw action, which will not parse)."""
    out = []
    for step, response in zip(traj["steps"], traj["responses"], strict=False):
        if response is None:
            call = step.action or step.raw_action
            response = "\n\n".join(x for x in (step.thought, call) if x)
        out.append(response)
    return out


def message_trajectories(path: Path) -> list[dict] | None:
    """Message-list trajectories (this project's, SWE-smith's) with their assistant turns verbatim,
    malformed ones included; None when the file is in another format."""

    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    try:
        data = json.loads(text)
        rows = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:
            return None
    out = []
    for row in rows:
        msgs = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(msgs, list) or not all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs
        ):
            return None
        task = next((m["content"] for m in msgs if m.get("role") == "user"), "")
        iid = row.get("instance_id") or (row.get("info") or {}).get("instance_id", "")
        turns = [m["content"] for m in msgs if m.get("role") == "assistant"]
        out.append({"instance_id": iid, "task_message": task, "task": extract_task(task), "turns": turns})
    return out or None


def read_any_trajectories(path: str | Path) -> list[dict]:
    """Any format `swesrl.training.data` reads (SWE-agent .traj, mini-swe-agent, OpenAI tool calls, ...)."""

    return [
        {
            "instance_id": t["instance_id"],
            "task_message": t["task_message"],
            "task": t["task"],
            "turns": replay_turns(t),
        }
        for t in read_trajectories(path)
    ]


class ReplayModel:
    """Replays the assistant turns of recorded trajectories, in order, one per query: message-list
    files verbatim, other formats through `swesrl.training.data`'s readers.

    The trajectory for a query is the only one in the file, or the one for `instance_id`, or the one
    whose task message opens the prompt's task message (or whose problem statement it holds). A prompt
    without assistant turns starts the episode over."""

    def __init__(self, path: str, instance_id: str | None = None):
        self.name = f"replay:{path}"
        if not Path(path).exists():
            raise UserError(f"trajectory file not found: {path}")
        self.trajs = message_trajectories(Path(path)) or read_any_trajectories(path)
        if instance_id is not None:
            self.trajs = [t for t in self.trajs if t["instance_id"] == instance_id]
        if not self.trajs:
            raise UserError(
                f"{path}: no readable trajectory" + (f" for {instance_id}" if instance_id else "")
            )
        self._cursor: dict[int, int] = {}
        self._lock = threading.Lock()

    def _find(self, messages: list[dict]) -> int:
        if len(self.trajs) == 1:
            return 0

        task = next((m["content"] for m in messages if m["role"] == "user"), "")
        for i, t in enumerate(self.trajs):
            if t["task_message"] and task.startswith(t["task_message"]):
                return i
        problem = extract_task(task).strip()
        for i, t in enumerate(self.trajs):
            if t["task"].strip() and t["task"].strip() == problem:
                return i
        raise LookupError("no recorded trajectory matches this task message")

    def generate(self, messages: list[dict], n: int = 1, **sampling: Any) -> list[str]:
        with self._lock:
            i = self._find(messages)
            if not any(m["role"] == "assistant" for m in messages):
                self._cursor[i] = 0
            turns, k = self.trajs[i]["turns"], self._cursor.get(i, 0)
            if k >= len(turns):
                raise LookupError(f"replay exhausted: the recorded trajectory has {len(turns)} actions")
            self._cursor[i] = k + 1
        return [turns[k]] * n


MODELS: dict[str, type] = {"hf": HFModel, "openai": OpenAIModel, "replay": ReplayModel}


def get_model(spec: str, **kw: Any) -> Model:
    """`hf:PATH`, `openai:BASE_URL#MODEL` or `replay:TRAJ`; keyword arguments go to the backend."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in MODELS or not rest:
        raise UserError(f"unknown model spec {spec!r}; use hf:PATH, openai:BASE_URL#MODEL or replay:TRAJ")
    if kind == "openai":
        url, _, name = rest.rpartition("#")
        return OpenAIModel(url or rest, name if url else "", **kw)
    return MODELS[kind](rest, **kw)
