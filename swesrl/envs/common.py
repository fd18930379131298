"""Pieces both backends share: output bounding, the environment inside the sandbox, workspaces, git scripts.

Every git operation on the task repository (diff, reset) runs *inside* the sandbox, because the
repository's `.git` is writable by sandboxed code (hooks, `core.fsmonitor`, ... would otherwise run
on the host), and because then both backends give byte-identical results.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import select
import shlex
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from swesrl.envs.base import WORKDIR
from swesrl.utils import UserError

log = logging.getLogger(__name__)

STATE_DIR = "/run/swesrl"
"""Sandbox-side folder (outside the repository) for the editor script and its undo history."""
EDITOR_PATH = f"{STATE_DIR}/str_replace_editor.py"
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SANDBOX_ENV = {
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TERM": "dumb",
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "MANPAGER": "cat",
    "PIP_PROGRESS_BAR": "off",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "TQDM_DISABLE": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}
GIT_NAME, GIT_EMAIL = "swesrl", "swesrl@localhost"
CONDA_ACTIVATE = "if [ -f /opt/miniconda3/bin/activate ]; then source /opt/miniconda3/bin/activate; conda activate testbed; fi"
"""SWE-bench images' environment activation: the grader's test lines and agent sandboxes use it."""


class OutputBuffer:
    """Keeps the first and last `limit // 2` bytes of a stream; counts what falls in between."""

    def __init__(self, limit: int):
        self.half = max(limit // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        self.tail += data
        extra = len(self.tail) - self.half
        if extra > 0:
            self.dropped += extra
            del self.tail[:extra]

    def text(self) -> str:
        if not self.dropped:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", errors="replace")
        head = bytes(self.head).decode("utf-8", errors="replace")
        tail = bytes(self.tail).decode("utf-8", errors="replace")
        return f"{head}\n<... {self.dropped} bytes of output elided ...>\n{tail}"


def bound_output(data: bytes, limit: int) -> str:
    buf = OutputBuffer(limit)
    buf.feed(data)
    return buf.text()


def sandbox_env(extra: dict[str, str] | None = None, path_prefix: list[str] | None = None) -> dict[str, str]:
    env = dict(SANDBOX_ENV)
    env["PATH"] = ":".join([*(path_prefix or []), SANDBOX_PATH])
    env.update(extra or {})
    return env


def editor_script() -> str:
    return (Path(__file__).with_name("editor_script.py")).read_text(encoding="utf-8")


def _git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


def make_workspace(source: Path, base_commit: str, parent: Path) -> tuple[Path, str]:
    """A fresh repository at `parent/testbed` holding `base_commit` and its history only; returns
    (path, full commit id).

    Only the commit and its ancestors are fetched (no other refs), so the agent cannot find the
    fix in later commits; it is checked out on a branch `main`, as in SWE-bench images.
    """
    source = Path(source)
    if not source.exists():
        raise UserError(f"repository not found: {source}")
    ws = parent / "testbed"
    for args in (
        ("init", "-q", str(ws)),
        ("-C", str(ws), "-c", "uploadpack.allowAnySHA1InWant=true", "fetch", "-q", "--no-tags",
         str(source.resolve()), base_commit),
        ("-C", str(ws), "checkout", "-q", "-B", "main", "FETCH_HEAD"),
    ):  # fmt: skip
        r = _git(*args)
        if r.returncode != 0:
            msg = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "git failed"
            raise UserError(f"cannot check out {base_commit[:12]} from {source}: {msg}")
    head = _git("-C", str(ws), "rev-parse", "HEAD").stdout.strip()
    for k, v in (("user.name", GIT_NAME), ("user.email", GIT_EMAIL), ("core.fileMode", "false")):
        _git("-C", str(ws), "config", k, v)
    (ws / ".git" / "FETCH_HEAD").unlink(missing_ok=True)
    return ws, head


def source_from_dir(repo: Path) -> tuple[Path, str]:
    """For `sandbox exec --repo DIR`: the repository and its HEAD commit."""
    repo = Path(repo)
    if not repo.exists():
        raise UserError(f"repository not found: {repo}")
    r = _git("-C", str(repo), "rev-parse", "--verify", "HEAD^{commit}")
    if r.returncode != 0:
        r2 = _git("bundle", "list-heads", str(repo)) if repo.is_file() else None
        if r2 is not None and r2.returncode == 0 and r2.stdout.strip():
            return repo, r2.stdout.split()[0]
        raise UserError(f"not a git repository with a commit: {repo}")
    return repo, r.stdout.strip()


def new_tempdir(prefix: str = "swesrl-") -> Path:
    """A temporary folder named `<prefix><owner pid>-...`, so `swesrl sandbox gc` can find leftovers."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


_term_cleanups: list[Callable[[], None]] = []
_term_pid: int | None = None


def close_on_sigterm(cleanup: Callable[[], None]) -> None:
    """Run `cleanup` (close this process's sandboxes) when SIGTERM arrives, then die of SIGTERM as
    before (exit status -15): SIGTERM's default kills a process without atexit, leaving workspaces,
    cgroups and containers behind. Installed from the main thread over the default disposition only;
    a program's own handler is left alone (its orderly exit runs atexit, which closes them too)."""
    global _term_pid
    if cleanup not in _term_cleanups:
        _term_cleanups.append(cleanup)
    current = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm:
        _term_pid = os.getpid()  # also a forked child: its cleanups close only its own sandboxes
    elif current is signal.SIG_DFL and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
        _term_pid = os.getpid()


def _on_sigterm(signum, frame) -> None:
    if os.getpid() == _term_pid:  # not a forked child that inherited the handler and nothing else
        for cleanup in list(_term_cleanups):
            try:
                cleanup()
            except Exception as e:  # the others still run; the process dies anyway
                log.warning("cleanup on SIGTERM failed: %s", e)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


RUNNER_DIED = (
    "The sandbox's command runner was killed (did the command kill every process?); it was restarted.\n"
)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def diff_script(base_commit: str) -> str:
    """Shell run inside the sandbox: the patch against base_commit, untracked files included.

    Stages everything into a throw-away index (the agent's own index is untouched), then diffs it
    against the base commit as SWE-bench does (`git -c core.fileMode=false diff`).
    """
    b = shlex.quote(base_commit)
    idx = f"{STATE_DIR}/diff.index"
    return (
        f"cd {WORKDIR} && rm -f {idx} && (cp -p .git/index {idx} 2>/dev/null || true) && "
        f"GIT_INDEX_FILE={idx} git add -A && "
        f"GIT_INDEX_FILE={idx} git -c core.fileMode=false -c core.quotePath=false diff --no-color --no-ext-diff --cached {b}; "
        f"rc=$?; rm -f {idx}; exit $rc"
    )


def reset_script(base_commit: str) -> str:
    b = shlex.quote(base_commit)
    return (
        f"cd {WORKDIR} && git checkout -q -f -B main {b} && git clean -qffdx && "
        f"rm -f {STATE_DIR}/history.json"
    )


_BINARY_BLOCK = re.compile(r"^Binary files .* differ$|^GIT binary patch$", re.MULTILINE)


def drop_binary_diffs(patch: str) -> str:
    """Remove per-file blocks of binary changes: a text patch cannot carry them (SWE-bench applies
    predictions with `git apply` / `patch`, which reject such blocks)."""
    if not _BINARY_BLOCK.search(patch):
        return patch
    blocks = re.split(r"(?m)^(?=diff --git )", patch)
    kept, dropped = [], []
    for block in blocks:
        if _BINARY_BLOCK.search(block):
            dropped.append(block.splitlines()[0] if block else "")
        else:
            kept.append(block)
    log.warning("diff: left out %d binary file change(s): %s", len(dropped), "; ".join(dropped)[:300])
    return "".join(kept)


def runner_script() -> str:
    return (Path(__file__).with_name("runner_script.py")).read_text(encoding="utf-8")


def runner_command(python: str = "python3") -> list[str]:
    """argv that starts the in-sandbox runner from memory, with the editor's source embedded (no
    file a command could rewrite before the runner is restarted)."""
    editor = base64.b64encode(editor_script().encode("utf-8")).decode("ascii")
    boot = f"import base64\nEDITOR_SOURCE = base64.b64decode('{editor}').decode('utf-8')\n"
    return [python, "-I", "-S", "-c", boot + runner_script()]


class RunnerDied(Exception):
    """The in-sandbox runner exited or stopped answering; the backend restarts it."""


class SandboxClosing(BaseException):
    """The process is exiting (or got SIGTERM) and closed this sandbox under a call still running on
    another thread (an abandoned worker after Ctrl-C). Not a result: a BaseException, so no
    `except Exception` turns it into an error report or a failed observation that would be saved
    as if graded (the instance stays incomplete and a rerun grades it)."""


class Channel:
    """JSON lines to and from the in-sandbox runner, over a pipe pair or Docker's attached socket
    (`framed`: Docker's multiplexed stream, 8-byte headers; stderr frames are kept for errors)."""

    def __init__(self, read, write, fd, framed: bool = False):
        self._read, self._write, self._fd, self._framed = read, write, fd, framed
        self._buf, self._frames, self.stderr = bytearray(), bytearray(), bytearray()

    def send(self, obj: dict) -> None:
        try:
            self._write(json.dumps(obj).encode("utf-8") + b"\n")
        except OSError as e:
            raise RunnerDied(f"cannot write to the runner: {e}") from None

    def recv(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RunnerDied(f"no answer from the runner in {timeout:.0f} s")
            ready, _, _ = select.select([self._fd], [], [], min(left, 1.0))
            if not ready:
                continue
            try:
                chunk = self._read()
            except OSError as e:
                raise RunnerDied(f"cannot read from the runner: {e}") from None
            if not chunk:
                raise RunnerDied(
                    "the runner exited"
                    + (f": {self.stderr[-300:].decode(errors='replace')}" if self.stderr else "")
                )
            if not self._framed:
                self._buf += chunk
                continue
            self._frames += chunk
            while len(self._frames) >= 8:
                (size,) = struct.unpack(">I", bytes(self._frames[4:8]))
                if len(self._frames) < 8 + size:
                    break
                payload = bytes(self._frames[8 : 8 + size])
                if self._frames[0] == 2:
                    self.stderr = (self.stderr + payload)[-4000:]
                else:
                    self._buf += payload
                del self._frames[: 8 + size]
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf = bytearray(rest)
        try:
            return json.loads(line)
        except ValueError:
            raise RunnerDied(f"unexpected output from the runner: {line[:200]!r}") from None


def reply_text(reply: dict) -> str:
    head = base64.b64decode(reply.get("head", ""))
    tail = base64.b64decode(reply.get("tail", ""))
    if not reply.get("dropped"):
        return (head + tail).decode("utf-8", errors="replace")
    return (
        head.decode("utf-8", errors="replace")
        + f"\n<... {reply['dropped']} bytes of output elided ...>\n"
        + tail.decode("utf-8", errors="replace")
    )


def reply_report(reply: dict) -> bytes | None:
    """The report-pipe bytes of a runner reply (None when the command had no report pipe); a
    report cut at the size limit gets a line that no reader accepts, so it cannot pass as whole."""
    if "report" not in reply:
        return None
    data = base64.b64decode(reply["report"])
    return data + (b"\n<report truncated>\n" if reply.get("report_dropped") else b"")
