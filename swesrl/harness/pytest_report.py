"""The grader's pytest reporter, copied into the sandbox and loaded with PYTEST_PLUGINS.

It writes one JSON line per test phase, plus the session's start and finish, to the pipe whose
fd number is in $SWESRL_REPORT_FD: a channel apart from the tests' own output, read by the
sandbox's runner (outside the tested process). Standard library only; works with pytest 3 to 9.
"""

import json
import os

_fd = []


def _emit(obj):
    if not _fd:
        return
    data = (json.dumps(obj) + "\n").encode("utf-8", "replace")
    try:
        while data:
            data = data[os.write(_fd[0], data) :]
    except OSError:
        del _fd[:]


def pytest_configure(config):
    if _fd:
        return  # a nested in-process session (pytester): report only the outermost one
    fd = os.environ.pop("SWESRL_REPORT_FD", "")
    plugins = [p for p in os.environ.get("PYTEST_PLUGINS", "").split(",") if p and p != __name__]
    if plugins:
        os.environ["PYTEST_PLUGINS"] = ",".join(plugins)
    else:
        os.environ.pop("PYTEST_PLUGINS", None)
    if fd.isdigit():
        try:
            os.fstat(int(fd))
            os.set_inheritable(int(fd), False)
            _fd.append(int(fd))
        except OSError:
            return
        _emit({"e": "start", "pid": os.getpid()})


def pytest_runtest_logreport(report):
    _emit(
        {
            "e": "test",
            "nodeid": report.nodeid,
            "when": report.when,
            "outcome": report.outcome,
            "xfail": hasattr(report, "wasxfail"),
        }
    )


def pytest_sessionfinish(session, exitstatus):
    _emit({"e": "finish", "exitstatus": int(exitstatus)})


pytest_sessionfinish.tryfirst = True
