"""The command runner that lives inside a sandbox for its whole life (standard library, Python 3.6+).

Starting a process inside a sandbox is the slow part (bubblewrap builds namespaces, `docker exec`
goes through runc), so each sandbox starts this runner once and sends it one JSON line per
command on stdin: {"cmd", "timeout", "limit"} (or {"editor": params, ...} to run str_replace_editor
in a fork of the runner, which saves an interpreter start-up per edit). The runner runs `bash -c cmd` (stderr merged into
stdout) in /testbed in a new session, keeps the head and tail of its output, kills it at the
timeout, and afterwards kills every process the command left behind (found by an environment
marker, so also ones that left its session), stopping them first so a fork bomb cannot outrun
it. It answers one JSON line on stdout: {"output" (base64), "returncode", "timed_out", "dropped"}.
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


def marked(marker):
    """Pids whose environment holds SWESRL_EXEC=marker (not ours)."""
    key = ("SWESRL_EXEC=" + marker).encode()
    me = os.getpid()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open("/proc/" + name + "/environ", "rb") as f:
                if key in f.read().split(b"\0"):
                    out.append(int(name))
        except OSError:
            pass
    return out


def kill_tree(marker, pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    stopped = set()
    quiet = 0
    while quiet < 3:
        new = [p for p in marked(marker) if p not in stopped]
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


def run(cmd, timeout, limit):
    marker = uuid.uuid4().hex
    env = dict(os.environ)
    env["SWESRL_EXEC"] = marker
    env.pop("SWESRL_WORKDIR", None)
    half = max(limit // 2, 1)
    head, tail, dropped = bytearray(), bytearray(), 0
    argv = ["bash", "-c", cmd]
    script = None
    if len(cmd) > 100000:  # one execve argument is capped at 128 KiB
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cmd-" + marker + ".sh")
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
        )
    except OSError as e:
        msg = base64.b64encode((str(e) + "\n").encode()).decode()
        return {"head": msg, "tail": "", "returncode": 126, "timed_out": False, "dropped": 0}
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    timed_out = eof = False

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
        ready, _, _ = select.select([fd], [], [], min(left, 0.05))
        if ready:
            chunk = os.read(fd, 1 << 16)
            if chunk:
                feed(chunk)
            else:
                eof = True
        elif proc.poll() is not None:
            break
    kill_tree(marker, proc.pid)
    while not eof:  # what is left in the pipe
        ready, _, _ = select.select([fd], [], [], 1.0)
        chunk = os.read(fd, 1 << 16) if ready else b""
        eof = not chunk
        feed(chunk)
    proc.stdout.close()
    rc = proc.wait()
    if script:
        os.unlink(script)
    return {
        "head": base64.b64encode(bytes(head)).decode(),
        "tail": base64.b64encode(bytes(tail)).decode(),
        "dropped": dropped,
        "returncode": -1 if timed_out else rc,
        "timed_out": timed_out,
    }


_editor = []


def run_editor(params, timeout, limit):
    """str_replace_editor in a fork of this process: no interpreter start-up per edit."""
    if not _editor:
        import importlib.util

        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "str_replace_editor.py")
        spec = importlib.util.spec_from_file_location("swesrl_str_replace_editor", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _editor.append(module)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(r)
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
            reply = run(req["cmd"], float(req["timeout"]), int(req["limit"]))
        reply["id"] = req.get("id")
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
