"""The command runner that lives inside a sandbox for its whole life (standard library, Python 3.6+).

Starting a process inside a sandbox is the slow part (bubblewrap builds namespaces, `docker exec`
goes through runc), so each sandbox starts this runner once and sends it one JSON line per
command on stdin: {"cmd", "timeout", "limit"} (or {"editor": params, ...} to run str_replace_editor
in a fork of the runner, which saves an interpreter start-up per edit). The runner runs `bash -c cmd`
(stderr merged into stdout) in /testbed in a new session, keeps the head and tail of its output,
kills it at the timeout, and afterwards kills every process of the sandbox that did not exist when
the runner started (whatever its environment, session or parent), stopping them first so a fork
bomb cannot outrun it. It answers one JSON line on stdout: {"output" (base64), "returncode",
"timed_out", "dropped"}. With {"report": true} the command also gets a pipe of its own (its fd
number in $SWESRL_REPORT_FD), read by the runner and returned as "report": the grader's pytest
reporter writes test results there, apart from what the tests print.

The runner is started from memory (`python3 -I -S -c <source>`, the editor's source embedded as
EDITOR_SOURCE), never from a file commands could rewrite, and makes itself non-dumpable, so
commands (same user) can neither ptrace it nor open its /proc files (its channel to the host).
"""

import base64
import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid

WORKDIR = os.environ.get("SWESRL_WORKDIR", "/testbed")
STATE = os.environ.get("SWESRL_STATE", "/run/swesrl")
UNSANDBOXED = os.environ.get("SWESRL_UNSANDBOXED") == "1"
EDITOR_SOURCE = globals().get("EDITOR_SOURCE", "")


BASELINE = set()


def _no_dump():
    """PR_SET_DUMPABLE 0: no ptrace, no /proc/<runner>/{fd,mem,environ} for unprivileged commands."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)
    except Exception:
        pass


def leftovers(marker):
    """Pids of the sandbox that are neither the runner nor there before it started. Without a
    sandbox (no pid namespace of our own) only those whose environment holds the command's marker."""
    me = os.getpid()
    key = ("SWESRL_EXEC=" + marker).encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me or int(name) in BASELINE:
            continue
        if UNSANDBOXED:
            try:
                with open("/proc/" + name + "/environ", "rb") as f:
                    if key not in f.read().split(b"\0"):
                        continue
            except OSError:
                continue
        out.append(int(name))
    return out


def reap():
    """As the sandbox's init (pid 1) the runner inherits orphans: collect their exit statuses."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_leftovers(marker, pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    stopped = set()
    quiet = 0
    while quiet < 3:
        new = [p for p in leftovers(marker) if p not in stopped]
        for p in new:
            try:
                os.kill(p, signal.SIGSTOP)
            except OSError:
                pass
            stopped.add(p)
        quiet = 0 if new else quiet + 1
    for p in stopped:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


def run(cmd, timeout, limit, report=False):
    marker = uuid.uuid4().hex
    env = dict(os.environ)
    env.pop("SWESRL_WORKDIR", None)
    env.pop("SWESRL_STATE", None)
    env.pop("SWESRL_UNSANDBOXED", None)
    if UNSANDBOXED:
        env["SWESRL_EXEC"] = marker
    rfd = wfd = None
    report_buf, report_dropped = bytearray(), 0
    if report:
        rfd, wfd = os.pipe()
        env["SWESRL_REPORT_FD"] = str(wfd)
    half = max(limit // 2, 1)
    head, tail, dropped = bytearray(), bytearray(), 0
    argv = ["bash", "-c", cmd]
    script = None
    if len(cmd) > 100000:  # one execve argument is capped at 128 KiB
        script = os.path.join(STATE, "cmd-" + marker + ".sh")
        with open(script, "w", encoding="utf-8") as f:
            f.write(cmd)
        argv = ["bash", script]
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=WORKDIR if os.path.isdir(WORKDIR) else "/",
            env=env,
            start_new_session=True,
            pass_fds=(wfd,) if report else (),
        )
    except OSError as e:
        if report:
            os.close(rfd)
            os.close(wfd)
        msg = base64.b64encode((str(e) + "\n").encode()).decode()
        return {"head": msg, "tail": "", "returncode": 126, "timed_out": False, "dropped": 0}
    fd = proc.stdout.fileno()
    if report:
        os.close(wfd)
    deadline = time.monotonic() + timeout
    timed_out = eof = False

    def feed_report(block=0.0):
        nonlocal rfd, report_dropped
        while rfd is not None:
            ready, _, _ = select.select([rfd], [], [], block)
            if not ready:
                return
            chunk = os.read(rfd, 1 << 16)
            if not chunk:
                os.close(rfd)
                rfd = None
                return
            room = max(limit - len(report_buf), 0)
            report_buf.extend(chunk[:room])
            report_dropped += len(chunk) - min(room, len(chunk))

    def feed(chunk):
        nonlocal dropped
        room = half - len(head)
        if room > 0:
            head.extend(chunk[:room])
            chunk = chunk[room:]
        if chunk:
            tail.extend(chunk)
            extra = len(tail) - half
            if extra > 0:
                dropped += extra
                del tail[:extra]

    while True:  # until the command exits (leftover processes may hold its output open)
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        if eof:
            try:
                proc.wait(timeout=min(left, 1.0))
                break
            except subprocess.TimeoutExpired:
                continue
        ready, _, _ = select.select([fd] + ([rfd] if rfd is not None else []), [], [], min(left, 0.05))
        if rfd is not None and rfd in ready:
            feed_report()
        if fd in ready:
            chunk = os.read(fd, 1 << 16)
            if chunk:
                feed(chunk)
            else:
                eof = True
        elif proc.poll() is not None:
            break
    kill_leftovers(marker, proc.pid)
    feed_report(0.0)
    if rfd is not None:  # every writer is dead now: drain to EOF
        feed_report(1.0)
    while not eof:  # what is left in the pipe
        ready, _, _ = select.select([fd], [], [], 1.0)
        chunk = os.read(fd, 1 << 16) if ready else b""
        eof = not chunk
        feed(chunk)
    proc.stdout.close()
    rc = proc.wait()
    reap()
    if script:
        os.unlink(script)
    out = {
        "head": base64.b64encode(bytes(head)).decode(),
        "tail": base64.b64encode(bytes(tail)).decode(),
        "dropped": dropped,
        "returncode": -1 if timed_out else rc,
        "timed_out": timed_out,
    }
    if report:
        out["report"] = base64.b64encode(bytes(report_buf)).decode()
        out["report_dropped"] = report_dropped
    return out


_editor = []


def run_editor(params, timeout, limit):
    """str_replace_editor in a fork of this process: no interpreter start-up per edit."""
    if not _editor:
        import types

        module = types.ModuleType("swesrl_str_replace_editor")
        module.__file__ = os.path.join(STATE, "str_replace_editor.py")  # its undo history lives beside it
        exec(compile(EDITOR_SOURCE, "str_replace_editor.py", "exec"), module.__dict__)
        _editor.append(module)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(r)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)  # not the runner's channel
            os.dup2(w, 1)
            os.dup2(w, 2)
            os.chdir(WORKDIR if os.path.isdir(WORKDIR) else "/")
            text, code = _editor[0].respond(params)
            data = text.encode("utf-8", "replace")
            while data:
                data = data[os.write(1, data) :]
        except BaseException:
            import traceback

            os.write(2, traceback.format_exc().encode("utf-8", "replace"))
        finally:
            os._exit(code)
    os.close(w)
    data = bytearray()
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            break
        ready, _, _ = select.select([r], [], [], min(left, 1.0))
        if ready:
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            data += chunk
    os.close(r)
    status = os.waitpid(pid, 0)[1]
    rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    half = max(limit // 2, 1)
    dropped = max(0, len(data) - 2 * half)
    head, tail = (bytes(data[:half]), bytes(data[-half:])) if dropped else (bytes(data), b"")
    return {
        "head": base64.b64encode(head).decode(),
        "tail": base64.b64encode(tail).decode(),
        "dropped": dropped,
        "returncode": -1 if timed_out else rc,
        "timed_out": timed_out,
    }


def main():
    _no_dump()
    BASELINE.update(int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid())
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout
    out.write(b'{"ready": true}\n')
    out.flush()
    stdin = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
    for line in stdin:
        if not line.strip():
            continue
        req = json.loads(line.decode("utf-8"))
        if "editor" in req:
            reply = run_editor(req["editor"], float(req["timeout"]), int(req["limit"]))
        else:
            reply = run(req["cmd"], float(req["timeout"]), int(req["limit"]), bool(req.get("report")))
        reply["id"] = req.get("id")
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
