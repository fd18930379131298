"""The `docker` backend: one container per task (docker SDK), the repository at /testbed.

The container runs `sleep infinity` under Docker's init (reaps orphans). Commands go to the
command runner (`runner_script.py`), started once per container as one `docker exec` with stdin
attached, because each `docker exec` costs ~90 ms (runc). The runner enforces timeouts and kills
every process a command leaves behind, found by an environment marker. Images without python3
fall back to one exec per command (`timeout -s KILL` + the same marker-based clean-up in bash).
Containers run with no capabilities beyond the few file-owner ones ordinary root commands need
(`CAPABILITIES`) and `no-new-privileges`. For images that carry the repository (SWE-bench images)
its history is cut down to the base commit and its ancestors when the container starts
(`isolate_history_script`), so the agent cannot read the fix from later commits, tags or branches.
Containers carry labels (`swesrl.sandbox=1`, the owner's host, pid and pid start time) so
`swesrl sandbox gc` can reap those whose owner died; they are removed in `close()`, by the
context manager, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import io
import logging
import os
import select
import shlex
import socket
import struct
import tarfile
import tempfile
import time
import uuid
import weakref
from pathlib import Path

from swesrl.envs.base import WORKDIR, Observation, SandboxConfig
from swesrl.envs.common import (
    CONDA_ACTIVATE,
    RUNNER_DIED,
    STATE_DIR,
    Channel,
    OutputBuffer,
    RunnerDied,
    SandboxClosing,
    close_on_sigterm,
    diff_script,
    drop_binary_diffs,
    editor_script,
    make_workspace,
    new_tempdir,
    reply_report,
    reply_text,
    reset_script,
    rmtree,
    runner_command,
    sandbox_env,
)
from swesrl.envs.tools import editor_command
from swesrl.utils import UserError

log = logging.getLogger(__name__)

LABEL = "swesrl.sandbox"
LONG_COMMAND = 100_000
# Kill every process whose environment holds SWESRL_EXEC=$M except this shell and its parent, with
# bash builtins only (no fork: it must work when a fork bomb has used up the pids limit). Processes
# are stopped first (a stopped process cannot fork) until three scans find no new one, then killed.
KILL_MARKED = r"""
stopped=" "
quiet=0
while [ "$quiet" -lt 3 ]; do
  new=0
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    case "$stopped" in *" $pid "*) continue ;; esac
    if [ "$pid" = "$$" ] || [ "$pid" = "$PPID" ]; then continue; fi
    while IFS= read -r -d '' v; do
      if [ "$v" = "SWESRL_EXEC=$M" ]; then kill -STOP "$pid" 2>/dev/null; stopped="$stopped$pid "; new=1; break; fi
    done 2>/dev/null < "$p/environ"
  done
  if [ "$new" = 0 ]; then quiet=$((quiet + 1)); else quiet=0; fi
done
for pid in $stopped; do kill -KILL "$pid" 2>/dev/null; done
"""
# Run the command with stderr merged into stdout; afterwards kill what it left running, as the local
# backend's pid namespace does, so both backends agree that no process outlives its command.
WRAPPER = 'bash -c "$1" 2>&1\nrc=$?\nM=$SWESRL_EXEC\n' + KILL_MARKED + "exit $rc\n"
CONDA_TESTBED = "/opt/miniconda3/envs/testbed/bin"
# Capabilities commands keep (all others dropped, none can be regained: no-new-privileges). Root in
# SWE-bench images owns everything, so these only matter for files of other owners: tar and pip set
# owners and modes of what they unpack (CHOWN, FOWNER, FSETID), and test suites that run as root
# expect root's access to files whatever their mode (DAC_OVERRIDE), as under Docker's defaults. Not
# SETUID/SETGID: then no process can leave uid 0, so the runner (same uid, no KILL) kills them all.
CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID"]
_live: weakref.WeakSet = weakref.WeakSet()


def _pid_start(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def owner_labels() -> dict[str, str]:
    pid = os.getpid()
    return {
        LABEL: "1",
        "swesrl.owner_host": socket.gethostname(),
        "swesrl.owner_pid": str(pid),
        "swesrl.owner_start": _pid_start(pid),
    }


def docker_client(timeout: int = 120):
    """A docker SDK client, or UserError (one line) when no daemon answers."""
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as e:
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise UserError(
            f"cannot reach the Docker daemon at {host} ({reason}); start dockerd or set DOCKER_HOST"
        ) from None
    return client


def ensure_image(client, image: str) -> None:
    import docker

    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        log.debug("pulling %s", image)
        client.images.pull(image)
    except Exception as e:
        why = " ".join(str(getattr(e, "explanation", None) or e).split())[:200]
        hint = (
            "pull it where a registry is reachable, or give --namespace (the Docker Hub namespace or "
            "registry/namespace holding the SWE-bench images)"
            if "sweb." in image
            else "pull it, or build the offline base image with docker/build_base_offline.sh"
        )
        raise UserError(
            f"docker image not found: {image} (not local; `docker pull {image}` failed: {why}); {hint}"
        ) from None


def _owner_alive(labels: dict[str, str]) -> bool:
    if labels.get("swesrl.owner_host") != socket.gethostname():
        return True  # another machine's container: not ours to judge
    try:
        pid = int(labels.get("swesrl.owner_pid", ""))
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        pass
    return _pid_start(pid) == labels.get("swesrl.owner_start", "")


def gc(all_containers: bool = False, client=None) -> list[str]:
    """Remove labelled sandbox containers whose owner process is gone (all of them with `all_containers`)."""
    client = client or docker_client()
    removed = []
    for c in client.containers.list(all=True, filters={"label": f"{LABEL}=1"}):
        if all_containers or not _owner_alive(c.labels):
            try:
                c.remove(force=True)
                removed.append(c.name)
            except Exception as e:  # already being removed
                log.debug("gc: %s: %s", c.name, e)
    return removed


def _read_frames(raw: bytes, pending: bytearray, buf: OutputBuffer) -> None:
    """Docker's multiplexed stream: 8-byte header (stream, 0, 0, 0, size) then the payload."""
    pending += raw
    while len(pending) >= 8:
        (size,) = struct.unpack(">I", bytes(pending[4:8]))
        if len(pending) < 8 + size:
            break
        buf.feed(bytes(pending[8 : 8 + size]))
        del pending[: 8 + size]


def isolate_history_script(base_commit: str) -> str:
    """Shell run in the container: replace /testbed/.git by a fresh repository holding only
    `base_commit` and its ancestors, checked out on branch `main`, with no other ref, tag, remote,
    stash, reflog, ORIG_HEAD/FETCH_HEAD or unreachable object. The work tree is left as the image
    has it (build output, installed metadata); the old index is reused so its stat data is kept.

    One `pack-objects` over the base commit's history writes the new pack (deltas reused, no
    index-pack as a fetch would run): ~2.5 s for sympy (45k commits) where fetch takes ~11 s."""
    b = shlex.quote(base_commit)
    return f"""set -e
cd {WORKDIR}
b={b}
[ -d .git ] || {{ echo "{WORKDIR}/.git is not a folder" >&2; exit 1; }}
T={WORKDIR}/.git.swesrl-new
O={WORKDIR}/.git.swesrl-old
rm -rf "$T" "$O"
fmt=$(git rev-parse --show-object-format 2>/dev/null || echo sha1)
head=$(git rev-parse -q --verify 'HEAD^{{commit}}' 2>/dev/null || true)
if [ "$fmt" = sha1 ]; then git init -q --bare "$T"; else git init -q --bare --object-format="$fmt" "$T"; fi
echo "$b" | git --no-replace-objects pack-objects -q --revs --delta-base-offset "$T/objects/pack/pack" >/dev/null
cp .git/config "$T/config"
git config --file "$T/config" --name-only --get-regexp '^(remote|branch)[.]' | sed 's/[.][^.]*$//' | sort -u |
  while IFS= read -r s; do git config --file "$T/config" --remove-section "$s"; done
git config --file "$T/config" core.bare false
for f in index sharedindex.* shallow info/exclude info/sparse-checkout; do
  if [ -f ".git/$f" ]; then mkdir -p "$(dirname "$T/$f")"; cp -p ".git/$f" "$T/$f"; fi
done
if [ -d .git/modules ]; then mv .git/modules "$T/modules"; fi
git --git-dir="$T" update-ref refs/heads/main "$b"
git --git-dir="$T" symbolic-ref HEAD refs/heads/main
mv .git "$O"
mv "$T" .git
rm -rf "$O"
if [ "$head" = "$b" ]; then mode=; else mode=--hard; fi
git reset -q $mode 2>/dev/null || {{ rm -f .git/index; git reset -q $mode; }}
rm -rf .git/logs .git/ORIG_HEAD .git/FETCH_HEAD
"""


class DockerEnv:
    """One container per task; see the module docstring.

    `isolate_history` (images that carry the repository only): cut its history down to the base
    commit and its ancestors. Leave it on for grading too: a patch's code runs there and could read
    the fix out of later commits."""

    def __init__(
        self,
        source: Path | None,
        base_commit: str,
        config: SandboxConfig,
        image: str | None = None,
        isolate_history: bool = True,
    ):
        self.config = config
        self.image = image or config.image
        self.container = None
        self._closed = False
        self._tar: Path | None = None
        self.client = docker_client()
        ensure_image(self.client, self.image)
        self._env = {k: v for k, v in sandbox_env(config.env).items() if k != "PATH" or "PATH" in config.env}
        self._exec_env: dict[str, str] = {}
        self._use_runner = False  # until the runner script is in the container
        self._chan: Channel | None = None
        self._sock = None
        try:
            self._start()
            if source is not None:
                self._tar, self.base_commit = self._pack(Path(source), base_commit)
                self._exec_checked(f"rm -rf {WORKDIR}", "clearing /testbed")
                with open(self._tar, "rb") as f:
                    self.container.put_archive("/", f)
            else:  # the image holds the repository already (SWE-bench images)
                out = self._exec_checked(
                    f"cd {WORKDIR} && git rev-parse {base_commit}^{{commit}}", "finding the base commit"
                )
                self.base_commit = out.strip()
                if isolate_history:
                    t0 = time.monotonic()
                    self._exec_checked(isolate_history_script(self.base_commit), "isolating the history")
                    log.debug("history of %s isolated in %.2f s", self.image, time.monotonic() - t0)
            self._install_tools()
            self._use_runner = self._has_python
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        kw = {}
        if not self.config.network:
            kw["network_mode"] = "none"
        import docker

        try:
            self.container = self._run_container(kw)
        except docker.errors.APIError as e:
            raise UserError(f"cannot start a container from {self.image}: {e.explanation or e}") from None
        self._owner = os.getpid()
        _live.add(self)
        close_on_sigterm(_close_all)
        self._prepare()

    def _run_container(self, kw: dict):
        return self.client.containers.run(
            self.image,
            command=["sleep", "infinity"],
            entrypoint=[],
            cap_drop=["ALL"],
            cap_add=CAPABILITIES,
            security_opt=["no-new-privileges"],
            detach=True,
            init=True,
            labels=owner_labels(),
            name=f"swesrl-{uuid.uuid4().hex[:12]}",
            working_dir="/",
            hostname="sandbox",
            mem_limit=self.config.memory,
            memswap_limit=self.config.memory,
            pids_limit=self.config.pids,
            nano_cpus=int(min(self.config.cpus, self._host_cpus()) * 1e9),
            environment=self._env,
            **kw,
        )

    def _prepare(self) -> None:
        out = self._exec_checked(
            f"mkdir -p {STATE_DIR} {WORKDIR} && echo $PATH && (command -v python3 >/dev/null && echo python3); "
            f"ls -d {CONDA_TESTBED} 2>/dev/null; true",
            "preparing the container",
        ).split()
        if CONDA_TESTBED in out and "PATH" not in self.config.env:  # SWE-bench images: their conda env first
            self._exec_env["PATH"] = f"{CONDA_TESTBED}:{out[0]}"
            self._exec_env.update(self._activated_env())
        self._has_python = "python3" in out or CONDA_TESTBED in out
        if not self._has_python:
            log.warning(
                "no python3 in %s: str_replace_editor will not work; one docker exec per command", self.image
            )

    def _activated_env(self) -> dict[str, str]:
        """The variables `CONDA_ACTIVATE` sets (what the grader's test lines run with), so agent
        commands in a SWE-bench image run in the same environment as its grading."""
        script = f"env -0 > {STATE_DIR}/env.before; {CONDA_ACTIVATE} >/dev/null 2>&1; env -0"
        after = self._exec_checked(script, "activating the image's environment")
        before = self._exec_checked(
            f"cat {STATE_DIR}/env.before; rm -f {STATE_DIR}/env.before", "reading env"
        )

        def parse(text: str) -> dict[str, str]:
            return dict(kv.split("=", 1) for kv in text.split("\0") if "=" in kv)

        old, new = parse(before), parse(after)
        skip = {"PWD", "OLDPWD", "SHLVL", "_"}
        return {
            k: v
            for k, v in new.items()
            if old.get(k) != v and k not in skip and not k.startswith("BASH_FUNC")
        }

    def _host_cpus(self) -> float:
        try:
            return float(self.client.info().get("NCPU") or os.cpu_count() or 1)
        except Exception:
            return float(os.cpu_count() or 1)

    def _pack(self, source: Path, base_commit: str) -> tuple[Path, str]:
        tmp = new_tempdir("swesrl-docker-")
        try:
            ws, commit = make_workspace(source, base_commit, tmp)
            fd, name = tempfile.mkstemp(prefix=f"swesrl-testbed-{os.getpid()}-", suffix=".tar")
            os.close(fd)

            def owner_root(ti: tarfile.TarInfo) -> tarfile.TarInfo:
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = "root"
                return ti

            with tarfile.open(name, "w") as tar:
                tar.add(ws, arcname=WORKDIR.lstrip("/"), filter=owner_root)
            return Path(name), commit
        finally:
            rmtree(tmp)

    def _install_tools(self) -> None:
        """The editor script at EDITOR_PATH (again after a reset: a command may have rewritten it)."""
        self._put_files({"str_replace_editor.py": editor_script()})

    def _put_files(self, files: dict[str, str]) -> None:
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            for name, text in files.items():
                raw = text.encode("utf-8")
                ti = tarfile.TarInfo(name)
                ti.size, ti.mode, ti.mtime = len(raw), 0o644, int(time.time())
                tar.addfile(ti, io.BytesIO(raw))
        self.container.put_archive(STATE_DIR, data.getvalue())

    # -- commands -------------------------------------------------------------------------
    def execute(self, command: str, timeout: float | None = None) -> Observation:
        return self._exec(command, timeout, self.config.max_output_bytes)

    def execute_reported(self, command: str, timeout: float | None = None) -> Observation:
        """`execute` with a report pipe ($SWESRL_REPORT_FD) read by the runner: `Observation.report`
        (None in images without python3, where there is no runner)."""
        if not self._use_runner:
            return self.execute(command, timeout)
        return self._exec("", timeout, self.config.max_output_bytes, {"cmd": command, "report": True})

    def editor(self, params: dict[str, str], timeout: float | None = None) -> Observation:
        """str_replace_editor, run by the container's runner in a fork (same output as the script)."""
        if not self._use_runner:
            return self.execute(editor_command(params), timeout)
        return self._exec("", timeout, self.config.max_output_bytes, {"editor": params})

    def request(self, req: dict, timeout: float | None = None) -> tuple[Observation, dict]:
        """One runner request with its extras (`fingerprint`, `watch`: runner_script.py): the
        Observation and the reply's other fields ({} when the runner died). Needs the runner
        (python3 in the image)."""
        if not self._use_runner:
            raise RuntimeError(f"no command runner in {self.image} (no python3): cannot send {sorted(req)}")
        return self._exec_reply("", timeout, self.config.max_output_bytes, req)

    def _exec(self, command: str, timeout: float | None, limit: int, req: dict | None = None) -> Observation:
        return self._exec_reply(command, timeout, limit, req)[0]

    def _exec_reply(self, command: str, timeout: float | None, limit: int, req: dict | None = None
                    ) -> tuple[Observation, dict]:  # fmt: skip
        if self._closed:
            if _exiting:
                raise SandboxClosing("the process closed its sandboxes")
            raise RuntimeError("environment is closed")
        timeout = self.config.timeout if timeout is None else timeout
        if self._use_runner:
            if self._chan is None:
                self._start_runner()
            if self._chan is not None:
                try:
                    self._chan.send({**(req or {"cmd": command}), "timeout": timeout, "limit": limit})
                    reply = self._chan.recv(timeout + 30)
                    obs = Observation(
                        reply_text(reply), reply["returncode"], reply["timed_out"], reply_report(reply)
                    )
                    return obs, reply
                except RunnerDied as e:  # e.g. the command killed every process in the container
                    if self._closed and _exiting:  # closed under this call at exit: no result
                        raise SandboxClosing("the process closed its sandboxes") from None
                    # Restart the container, whatever the cause: what the dead runner's command left
                    # running would otherwise be in the next runner's baseline, spared for good.
                    log.warning("sandbox runner died (%s); restarting the container", e)
                    self._stop_runner(restart_container=True)
                    return Observation(RUNNER_DIED, -1, False), {}
                except (ValueError, OSError):  # its socket was closed under this call
                    if self._closed and _exiting:
                        raise SandboxClosing("the process closed its sandboxes") from None
                    raise
        return self._exec_direct(command, timeout, limit), {}

    def _start_runner(self) -> None:
        """Start the runner; a container that is not running (`kill -9 -1` ended its main process)
        or in which the runner cannot start is restarted, so the runner's baseline of processes to
        spare holds only the container's own."""
        import docker

        api = self.client.api
        for attempt in range(3):
            try:
                self.container.reload()
                if self.container.status != "running":
                    log.warning(
                        "container %s is %s; restarting it", self.container.name, self.container.status
                    )
                    self.container.restart(timeout=0)
                exec_id = api.exec_create(
                    self.container.id,
                    runner_command("python3"),
                    stdin=True,
                    workdir=WORKDIR,
                    environment=self._exec_env,
                )["Id"]
                sock = api.exec_start(exec_id, socket=True)
            except docker.errors.APIError as e:  # e.g. 409: it stopped between reload and exec
                err: Exception = e
            else:
                raw = getattr(sock, "_sock", sock)
                self._sock = sock
                self._chan = Channel(lambda raw=raw: raw.recv(1 << 16), raw.sendall, raw, framed=True)
                try:
                    self._chan.recv(60)
                    return
                except RunnerDied as e:
                    err = e
                    self._stop_runner()
            if attempt == 2:
                raise RuntimeError(
                    f"cannot start the command runner in {self.container.name}: {err}"
                ) from None
            time.sleep(0.5)
            self._restart_container()

    def _stop_runner(self, restart_container: bool = False) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except Exception:
                pass
        self._sock = self._chan = None
        if restart_container:
            self._restart_container()

    def _restart_container(self) -> None:
        try:
            self.container.restart(timeout=0)
        except Exception as e:  # the next _start_runner tries again
            log.warning("could not restart container %s: %s", self.container.name, e)

    def _exec_direct(self, command: str, timeout: float, limit: int) -> Observation:
        if len(command.encode()) > LONG_COMMAND:
            name = f"cmd-{uuid.uuid4().hex[:8]}.sh"
            self._put_files({name: command})
            command = f"bash {STATE_DIR}/{name}; rc=$?; rm -f {STATE_DIR}/{name}; exit $rc"
        marker = uuid.uuid4().hex
        api = self.client.api
        argv = ["timeout", "-s", "KILL", f"{timeout + 5:.3f}", "bash", "-c", WRAPPER, "bash", command]
        exec_id = api.exec_create(
            self.container.id,
            argv,
            workdir=WORKDIR,
            environment={**self._exec_env, "SWESRL_EXEC": marker},
            stdin=False,
        )["Id"]
        sock = api.exec_start(exec_id, socket=True)
        raw = getattr(sock, "_sock", sock)
        buf, pending = OutputBuffer(limit), bytearray()
        start = time.monotonic()
        deadline = start + timeout
        timed_out = False
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                ready, _, _ = select.select([raw], [], [], min(left, 1.0))
                if ready:
                    chunk = raw.recv(1 << 16)
                    if not chunk:
                        break
                    _read_frames(chunk, pending, buf)
            if timed_out:
                self._kill_marked(marker)
        finally:
            sock.close()
        rc = self._exit_code(exec_id)
        return Observation(buf.text(), -1 if timed_out else rc, timed_out)

    def _exit_code(self, exec_id: str) -> int:
        for _ in range(200):
            info = self.client.api.exec_inspect(exec_id)
            if not info.get("Running"):
                return info.get("ExitCode") if info.get("ExitCode") is not None else -1
            time.sleep(0.01)
        return -1

    def _kill_marked(self, marker: str) -> None:
        """Kill every process whose environment holds this command's marker (its whole tree);
        restart the container if not even that can run (e.g. a fork bomb holds every pid)."""
        try:
            res = self.container.exec_run(["bash", "-c", f"M={marker}\n{KILL_MARKED}"], user="root")
            if res.exit_code == 0:
                return
            reason = res.output.decode(errors="replace").strip()[-200:]
        except Exception as e:
            reason = str(e)[:200]
        log.warning(
            "could not kill the timed-out command (%s); restarting container %s", reason, self.container.name
        )
        self.container.restart(timeout=0)

    def _exec_checked(self, script: str, what: str) -> str:
        obs = self._exec(script, max(self.config.timeout, 600), 1 << 40)
        if obs.returncode != 0:
            raise RuntimeError(
                f"{what} failed in container {self.container.name}: {obs.output.strip()[-500:]}"
            )
        return obs.output

    # -- Environment protocol -------------------------------------------------------------
    def diff(self) -> str:
        return drop_binary_diffs(self._exec_checked(diff_script(self.base_commit), "diff"))

    def reset(self) -> None:
        try:
            self._exec_checked(reset_script(self.base_commit), "reset")
        except RuntimeError as e:
            if self._tar is None:
                raise
            log.warning("%s; copying the repository in again", e)
            self._exec_checked(f"rm -rf {WORKDIR} {STATE_DIR}/history.json", "clearing /testbed")
            with open(self._tar, "rb") as f:
                self.container.put_archive("/", f)
        self._exec_checked("find /tmp -mindepth 1 -delete 2>/dev/null; true", "clearing /tmp")
        self._install_tools()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _live.discard(self)
        self._stop_runner()
        if self.container is not None:
            try:
                self.container.remove(force=True)
            except Exception as e:
                log.warning("could not remove container %s: %s", self.container.name, e)
        if self._tar is not None:
            self._tar.unlink(missing_ok=True)

    def __enter__(self) -> DockerEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_exiting = False


@atexit.register
def _close_all() -> None:
    """Close this process's containers (at exit, on SIGTERM); in a forked child only its own."""
    global _exiting
    _exiting = True
    for env in [e for e in list(_live) if getattr(e, "_owner", None) == os.getpid()]:
        try:
            env.close()
        except Exception:
            pass
