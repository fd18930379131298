"""The `local` backend: a workspace folder on the host, commands under bubblewrap.

Inside the sandbox the workspace is `/testbed` (the cwd), the host's system folders and the
Python running swesrl are mounted read-only (home folders and data folders are not visible),
files of /etc, /opt and /usr/local that not every host user may read (/etc/shadow, private keys)
are replaced by empty ones, /tmp and $HOME are private to the environment, there is no network
(unless `network: true`), and the sandbox has its own user, pid, ipc, uts and cgroup namespaces.
Commands run with no capabilities (bounding set empty, `no_new_privs`: setuid binaries give
nothing) and cannot create user namespaces, so they cannot remount, `open_by_handle_at` or
ptrace their way out. One bubblewrap sandbox per environment runs the command runner
(`runner_script.py`, from memory, non-dumpable), which starts each command, enforces its timeout
and kills every process of the sandbox that the command left behind; if the runner dies (say
`kill -9 -1`), the next command starts a fresh sandbox. Where the host allows it (root, cgroup
v1 or v2), a cgroup per environment caps processes and memory; otherwise rlimits do.

Without a working bubblewrap nothing is isolated: the backend refuses to start unless the
config allows it (`unsafe_no_sandbox`, the CLI's `--unsafe-no-sandbox`), and then warns loudly.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from pathlib import Path

from swesrl.envs.base import WORKDIR, Observation, SandboxConfig
from swesrl.envs.common import (
    RUNNER_DIED,
    STATE_DIR,
    Channel,
    RunnerDied,
    SandboxClosing,
    close_on_sigterm,
    diff_script,
    drop_binary_diffs,
    editor_script,
    make_workspace,
    new_tempdir,
    pid_alive,
    reply_report,
    reply_text,
    reset_script,
    rmtree,
    runner_command,
    sandbox_env,
)
from swesrl.envs.taskenv import task_env
from swesrl.utils import UserError

log = logging.getLogger(__name__)

SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt")
SECRET_SCAN = ("/etc", "/opt", "/usr/local")
"""Mounted folders searched for files not every user may read (package files elsewhere are public)."""
NO_SANDBOX = (
    "bubblewrap (bwrap) is missing or cannot create namespaces here, so commands would run "
    "UNSANDBOXED with full access to this machine; install bubblewrap (and allow unprivileged "
    "user namespaces), or pass --unsafe-no-sandbox (config sandbox.unsafe_no_sandbox) to run anyway"
)


def parse_size(text: str | int) -> int:
    if isinstance(text, int):
        return text
    t = text.strip().lower().rstrip("b")
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(t[-1:], 1)
    try:
        return int(float(t[:-1] if t[-1:] in "kmgt" else t) * mult)
    except ValueError:
        raise UserError(f"bad memory size {text!r} (use e.g. 512m or 4g)") from None


_bwrap_ok: bool | None = None
_BWRAP_FLAGS = ["--unshare-user", "--unshare-pid", "--unshare-net", "--cap-drop", "ALL"]


def bwrap_available() -> bool:
    """bwrap runs here with every namespace and capability drop the sandbox relies on."""
    global _bwrap_ok
    if _bwrap_ok is None:
        exe = shutil.which("bwrap")
        _bwrap_ok = bool(exe) and (
            subprocess.run(
                [exe, "--ro-bind", "/", "/", *_BWRAP_FLAGS, "--", "true"], capture_output=True
            ).returncode
            == 0
        )
    return _bwrap_ok


_disable_userns: bool | None = None


def _userns_flag() -> list[str]:
    """`--disable-userns` (bubblewrap >= 0.8): commands cannot make a user namespace and gain
    capabilities inside it."""
    global _disable_userns
    if _disable_userns is None:
        r = subprocess.run(
            ["bwrap", "--ro-bind", "/", "/", *_BWRAP_FLAGS, "--disable-userns", "--", "true"],
            capture_output=True,
        )
        _disable_userns = r.returncode == 0
        if not _disable_userns:
            log.warning("this bubblewrap has no --disable-userns: commands can create user namespaces")
    return ["--disable-userns"] if _disable_userns else []


_hidden: list[tuple[str, str]] | None = None
_hidden_lock = threading.Lock()


def hidden_paths() -> list[tuple[str, str]]:
    """(kind, path) for every file ("file") or folder ("dir") under SECRET_SCAN that is not
    readable by every user on the host: mounted over with an empty one inside the sandbox. Scanned
    once per process (sandboxes starting at once wait for the one scan)."""
    global _hidden
    with _hidden_lock:
        return _hidden if _hidden is not None else _scan_hidden()


def _scan_hidden() -> list[tuple[str, str]]:
    global _hidden
    out = []
    for top in SECRET_SCAN:
        for root, dirs, files in os.walk(top):
            for d in list(dirs):
                p = os.path.join(root, d)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o005 != 0o005:
                    out.append(("dir", p))
                    dirs.remove(d)
            for f in files:
                p = os.path.join(root, f)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and not st.st_mode & 0o004:
                    out.append(("file", p))
    _hidden = out
    return _hidden


_warned_unsandboxed = False


def warn_unsandboxed() -> None:
    """Say once per process (not once per sandbox: a run opens hundreds) that nothing is isolated."""
    global _warned_unsandboxed
    if not _warned_unsandboxed:
        _warned_unsandboxed = True
        log.warning(
            "bubblewrap (bwrap) is missing or unusable: commands run UNSANDBOXED as plain "
            "subprocesses with full access to this machine. Install bubblewrap."
        )


class Cgroup:
    """Best-effort per-environment cgroup (v1 pids+memory or v2) capping processes and memory."""

    def __init__(self, pids: int, memory: int):
        self.paths: list[Path] = []
        name = f"swesrl-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        root = Path("/sys/fs/cgroup")
        own = self._own_paths()
        try:
            if (root / "pids").is_dir() or (root / "memory").is_dir():  # v1
                for ctrl, files in (
                    ("pids", {"pids.max": pids}),
                    ("memory", {"memory.limit_in_bytes": memory}),
                ):
                    base = root / ctrl / own.get(ctrl, "/").lstrip("/")
                    self._make(base / name, files)
            elif (root / "cgroup.controllers").is_file():  # v2
                base = root / own.get("", "/").lstrip("/")
                self._make(base / name, {"pids.max": pids, "memory.max": memory, "memory.swap.max": 0})
        except OSError as e:
            log.debug("no cgroup limits (%s); using rlimits", e)
            self.remove()
        self.has_pids = any("pids" in p.parts or (p / "pids.max").exists() for p in self.paths)
        self.has_memory = any(
            (p / "memory.limit_in_bytes").exists() or (p / "memory.max").exists() for p in self.paths
        )

    @staticmethod
    def _own_paths() -> dict[str, str]:
        out = {}
        try:
            for line in Path("/proc/self/cgroup").read_text().splitlines():
                _, ctrls, path = line.split(":", 2)
                for c in ctrls.split(","):
                    out[c] = path
        except OSError:
            pass
        return out

    def _make(self, path: Path, files: dict[str, int]) -> None:
        path.mkdir()
        self.paths.append(path)
        for f, v in files.items():
            if (path / f).exists():
                (path / f).write_text(str(v))

    def kill_all(self) -> None:
        for p in self.paths:
            try:
                for pid in (p / "cgroup.procs").read_text().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            except OSError:
                pass

    def remove(self) -> None:
        for p in reversed(self.paths):
            for _ in range(50):
                try:
                    p.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    self.kill_all()
                    time.sleep(0.02)
        self.paths = []


_live: weakref.WeakSet = weakref.WeakSet()
_live_lock = threading.Lock()
_terminating = False


def close_all_local() -> None:
    """Close every local sandbox this process opened (at exit, on SIGTERM: `close_on_sigterm`);
    none opens after it. In a forked child only the child's own."""
    global _terminating
    with _live_lock:
        _terminating = True
        envs = [e for e in _live if e._owner == os.getpid()]
    for env in envs:
        try:
            env.close()
        except Exception as e:  # the others still close
            log.warning("closing a local sandbox failed: %s", e)


atexit.register(close_all_local)


class LocalEnv:
    """A task repository in a host folder; commands under bubblewrap (see the module docstring)."""

    def __init__(self, source: Path, base_commit: str, config: SandboxConfig, image: str | None = None):
        self.config = config
        self._closed = False
        self._proc: subprocess.Popen | None = None
        self.cgroup: Cgroup | None = None
        self._owner = os.getpid()
        close_on_sigterm(close_all_local)
        self.root = new_tempdir("swesrl-local-")
        with _live_lock:
            _live.add(self)
            closing = _terminating
        if closing:  # the process is shutting down: no new sandbox
            self.close()
            raise RuntimeError("this process is closing its sandboxes (SIGTERM or exit)")
        try:
            self.source = Path(source)
            self.workspace, self.base_commit = make_workspace(self.source, base_commit, self.root)
            self.state, self.tmp, self.home = self.root / "state", self.root / "tmp", self.root / "home"
            for d in (self.state, self.tmp, self.home):
                d.mkdir()
            (self.state / "str_replace_editor.py").write_text(editor_script(), encoding="utf-8")
            self.sandboxed = bwrap_available()
            if not self.sandboxed:
                if not config.unsafe_no_sandbox:
                    raise UserError(NO_SANDBOX)
                warn_unsandboxed()
            self.memory = parse_size(config.memory)
            if self.sandboxed:
                self.cgroup = Cgroup(config.pids, self.memory)
            self.python_prefixes = self._python_prefixes()
            self._argv = self._bwrap_argv() if self.sandboxed else []
            self._env = sandbox_env(config.env, self._python_bins())
            self._start_runner()
        except BaseException:
            self.close()
            raise

    # -- sandbox command line -------------------------------------------------------------
    def _python_prefixes(self) -> list[str]:
        """Python prefixes commands see, the one on PATH first: the task environment (`taskenv.py`)
        and the base interpreter it links to; or, with `task_python: host`, the trainer's own."""
        if self.config.task_python == "host" or not self.sandboxed:
            return list(dict.fromkeys([sys.prefix, sys.base_prefix]))
        if self.config.task_python != "env":
            return list(dict.fromkeys([self.config.task_python, sys.base_prefix]))
        env = task_env()
        return [str(env), sys.base_prefix] if env else list(dict.fromkeys([sys.prefix, sys.base_prefix]))

    def _python_bins(self) -> list[str]:
        bins = []
        for prefix in self.python_prefixes[:1] if self.sandboxed else self.python_prefixes:
            b = os.path.join(prefix, "bin")
            if os.path.isdir(b) and prefix not in ("/usr", "/usr/local"):
                bins.append(b)
        return bins

    def _bwrap_argv(self) -> list[str]:
        # --as-pid-1: the runner is the namespace's init (no bwrap reaper holding its channel; commands
        # cannot signal it; when it dies every process of the sandbox dies with it)
        a = ["bwrap", "--die-with-parent", "--new-session", "--unshare-user", "--unshare-pid", "--as-pid-1"]
        a += ["--unshare-ipc", "--unshare-uts", "--hostname", "sandbox", "--unshare-cgroup-try"]
        a += ["--cap-drop", "ALL", *_userns_flag()]
        if not self.config.network:
            a.append("--unshare-net")
        for d in SYSTEM_DIRS:
            p = Path("/") / d
            if p.is_symlink():
                a += ["--symlink", os.readlink(p), str(p)]
            elif p.is_dir():
                a += ["--ro-bind", str(p), str(p)]
        for kind, p in hidden_paths():
            a += ["--ro-bind", "/dev/null", p] if kind == "file" else ["--tmpfs", p, "--remount-ro", p]
        a += ["--proc", "/proc", "--dev", "/dev"]
        a += ["--bind", str(self.tmp), "/tmp", "--bind", str(self.home), "/root"]
        for prefix in self.python_prefixes:
            if not any(prefix == f"/{d}" or prefix.startswith(f"/{d}/") for d in SYSTEM_DIRS):
                a += ["--ro-bind", prefix, prefix]
        a += ["--bind", str(self.state), STATE_DIR, "--bind", str(self.workspace), WORKDIR]
        a += ["--remount-ro", "/", "--chdir", WORKDIR, "--clearenv"]
        return a

    def _limited(self, argv: list[str]) -> list[str]:
        """Wrap argv in a shell that joins the cgroup (or sets rlimits) and then execs it; no
        preexec_fn, which is unsafe in threaded programs (harness workers)."""
        steps = []
        if self.cgroup is not None:
            steps += [f"echo $$ > {shlex.quote(str(p / 'cgroup.procs'))}" for p in self.cgroup.paths]
        if self.cgroup is None or not self.cgroup.has_memory:
            steps.append(f"ulimit -v {self.memory // 1024}")
        if (self.cgroup is None or not self.cgroup.has_pids) and os.geteuid() != 0:
            steps.append(f"ulimit -u {self.config.pids}")
        if self.config.nice:  # RLIMIT_NICE 0: not even a host limit lets a command renice itself back
            steps.append("ulimit -e 0")
        run = f'exec nice -n {self.config.nice} "$@"' if self.config.nice else 'exec "$@"'
        return ["bash", "-c", " && ".join([*steps, run]), "bash", *argv]

    def _start_runner(self) -> None:
        python = os.path.join(self.python_prefixes[0], "bin", "python3") if self.sandboxed else sys.executable
        runner = runner_command(python if os.path.exists(python) else sys.executable)
        if self.sandboxed:
            envs = [x for k, v in self._env.items() for x in ("--setenv", k, v)]
            argv, env = [*self._argv, *envs, "--", *runner], {"PATH": os.environ.get("PATH", "")}
        else:
            argv = runner
            env = {
                **self._env,
                "SWESRL_WORKDIR": str(self.workspace),
                "SWESRL_STATE": str(self.state),
                "SWESRL_UNSANDBOXED": "1",
            }
        self._proc = subprocess.Popen(
            self._limited(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=self.workspace,
            env=env,
            start_new_session=True,
        )
        stdin, stdout = self._proc.stdin, self._proc.stdout

        def write(data: bytes) -> None:
            stdin.write(data)
            stdin.flush()

        self._chan = Channel(lambda: os.read(stdout.fileno(), 1 << 16), write, stdout.fileno())
        self._chan.recv(60)  # {"ready": true}

    def _stop_runner(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.cgroup is not None:
            self.cgroup.kill_all()
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        proc.wait()

    # -- Environment protocol -------------------------------------------------------------
    def execute(self, command: str, timeout: float | None = None) -> Observation:
        return self._exec(command, timeout, self.config.max_output_bytes)

    def execute_reported(self, command: str, timeout: float | None = None) -> Observation:
        """`execute` with a report pipe for the command ($SWESRL_REPORT_FD), read by the runner; what
        was written there is `Observation.report` (the grader's channel apart from the output)."""
        return self._request({"cmd": command, "report": True}, timeout, self.config.max_output_bytes)

    def editor(self, params: dict[str, str], timeout: float | None = None) -> Observation:
        """str_replace_editor, run by the sandbox's runner in a fork (same output as the script)."""
        return self._request({"editor": params}, timeout, self.config.max_output_bytes)

    def _exec(self, command: str, timeout: float | None, limit: int) -> Observation:
        if not self.sandboxed:
            command = self._unsandboxed_paths(command)
        return self._request({"cmd": command}, timeout, limit)

    def request(self, req: dict, timeout: float | None = None) -> tuple[Observation, dict]:
        """One runner request with its extras (`fingerprint`, `watch`: runner_script.py): the
        Observation and the reply's other fields ({} when the runner died)."""
        if "cmd" in req and not self.sandboxed:
            req = {**req, "cmd": self._unsandboxed_paths(req["cmd"])}
        return self._request_reply(req, timeout, self.config.max_output_bytes)

    def _unsandboxed_paths(self, command: str) -> str:
        return command.replace(WORKDIR, str(self.workspace)).replace(STATE_DIR, str(self.state))

    def _request(self, req: dict, timeout: float | None, limit: int) -> Observation:
        return self._request_reply(req, timeout, limit)[0]

    def _request_reply(self, req: dict, timeout: float | None, limit: int) -> tuple[Observation, dict]:
        if self._closed:
            if _terminating:
                raise SandboxClosing("the process closed its sandboxes")
            raise RuntimeError("environment is closed")
        timeout = self.config.timeout if timeout is None else timeout
        if self._proc is not None and self._proc.poll() is not None:  # died between commands
            self._stop_runner()
        if self._proc is None:
            self._start_runner()
        try:
            self._chan.send({**req, "timeout": timeout, "limit": limit})
            reply = self._chan.recv(timeout + 30)
        except RunnerDied as e:  # e.g. the command killed every process in the sandbox
            if self._closed and _terminating:  # closed under this call at exit: no result
                raise SandboxClosing("the process closed its sandboxes") from None
            log.warning("sandbox runner died (%s); restarting it", e)
            self._stop_runner()
            return Observation(RUNNER_DIED, -1, False), {}
        except (ValueError, OSError):  # its pipes were closed under this call
            if self._closed and _terminating:
                raise SandboxClosing("the process closed its sandboxes") from None
            raise
        text = reply_text(reply)
        if not self.sandboxed:
            text = text.replace(str(self.workspace), WORKDIR)
        return Observation(text, reply["returncode"], reply["timed_out"], reply_report(reply)), reply

    def _run_checked(self, script: str, what: str) -> str:
        obs = self._exec(script, max(self.config.timeout, 600), 1 << 40)
        if obs.returncode != 0:
            raise RuntimeError(f"{what} failed in {WORKDIR}: {obs.output.strip()[-500:]}")
        return obs.output

    def diff(self) -> str:
        return drop_binary_diffs(self._run_checked(diff_script(self.base_commit), "diff"))

    def reset(self) -> None:
        try:
            self._run_checked(reset_script(self.base_commit), "reset")
        except RuntimeError as e:  # the agent broke .git: build the workspace again from the source
            log.warning("%s; rebuilding the workspace", e)
            self._stop_runner()  # its bind mount holds the old folder
            rmtree(self.workspace)
            make_workspace(self.source, self.base_commit, self.root)
            (self.state / "history.json").unlink(missing_ok=True)
        for p in self.tmp.iterdir():
            rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
        editor = self.state / "str_replace_editor.py"  # a command may have rewritten it
        editor.unlink(missing_ok=True)
        editor.write_text(editor_script(), encoding="utf-8")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_runner()
        if self.cgroup is not None:
            self.cgroup.remove()
        rmtree(self.root)
        with _live_lock:
            _live.discard(self)

    def __enter__(self) -> LocalEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def gc_local() -> list[str]:
    """Remove workspaces and cgroups left by local sandboxes whose owner process died (SIGKILL)."""
    removed = []
    roots = [Path(tempfile.gettempdir()).glob("swesrl-*-*")]
    cg = Path("/sys/fs/cgroup")
    for ctrl, own in Cgroup._own_paths().items():  # where Cgroup() makes them (v1: per controller)
        parent = cg / (ctrl if ctrl and (cg / ctrl).is_dir() else "") / own.lstrip("/")
        roots.append(parent.glob("swesrl-*-*"))
    for it in roots:
        for path in it:
            m = re.match(r"swesrl-(?:local-|docker-|testbed-)?(\d+)-", path.name)
            if not m or pid_alive(int(m.group(1))):
                continue
            try:
                if path.is_relative_to("/sys/fs/cgroup"):
                    path.rmdir()
                elif path.is_dir():
                    rmtree(path)
                else:
                    path.unlink()
                removed.append(str(path))
            except OSError as e:
                log.debug("gc: %s: %s", path, e)
    return removed
