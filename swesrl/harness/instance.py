"""Grade one patch on one instance: a fresh sandbox, SWE-bench's apply chain, tests, grading.

    report = grade_patch(instance, patch, SandboxConfig(backend="local"), mirror="tasks/repos")

`run_instance`: check the patch with unidiff; in a sandbox at base_commit apply it with swebench's
`GIT_APPLY_CMDS` (`git apply --verbose`, `--3way`, `--reject`, then `patch --fuzz=5`, restoring a
clean tree between tries; a patch that is already applied counts); reset the test infrastructure a
patch may have changed (`integrity.py`); reset the files `test_patch` touches and apply
`test_patch`; run the test command with its output redirected to a file and its exit status
written to another (so only what the tests print counts, and the exit status cannot be forged by
printing); grade (`grading.py`).

An instance's outputs are `<dir>/{patch.diff, test_output.txt, report.json}`; report.json is
written last and atomically: it marks the instance done (`read_report`).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import shlex
import time
from pathlib import Path
from typing import Any

from swesrl.core.instances import Instance, repo_source
from swesrl.envs import env_for_instance
from swesrl.envs.base import WORKDIR, SandboxConfig
from swesrl.envs.common import CONDA_ACTIVATE
from swesrl.envs.docker_env import DockerEnv
from swesrl.harness.grading import LINE_PARSERS, Status, failed_tests_report, format_test_output, grade
from swesrl.harness.integrity import (
    PLUGIN_NAME,
    changes_script,
    config_paths,
    infra_reason,
    parse_raw_diff,
    plugin_source,
    pytest_config,
    read_reporter,
    reporter_env,
    reset_script,
)
from swesrl.harness.spec import (
    DEFAULT_NAMESPACE,
    EvalSpec,
    make_eval_spec,
    reset_test_files,
    split_eval_script,
)
from swesrl.utils import (
    atomic_write_json,
    atomic_write_text,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 1800.0
"""Seconds the tests of one instance may run (SWE-bench's default)."""
SETUP_TIMEOUT = 600.0
"""Seconds for each preparation command (patch application, test-file reset)."""
MAX_LOG_BYTES = 32_000_000
"""Test logs longer than this are cut (head kept): a log is read out of the sandbox in one piece."""
REPORT = "report.json"
PATCH = "patch.diff"
TEST_OUTPUT = "test_output.txt"
CHUNK = 60_000


def check_patch(patch: str) -> tuple[bool, str]:
    """(looks like a diff, message). unidiff's view; git decides in the end, as in SWE-bench."""
    from unidiff import PatchSet
    from unidiff.errors import UnidiffParseError

    try:
        ps = PatchSet(patch)
    except UnidiffParseError as e:
        return True, f"unidiff could not parse the patch ({e}); trying git anyway"
    if len(ps) == 0 and "GIT binary patch" not in patch:
        return False, "the patch contains no file diff (not a unified diff)"
    files = ", ".join(f.path for f in ps)
    return True, f"{len(ps)} file(s): {files} (+{ps.added} -{ps.removed})"


def _apply_cmds() -> list[str]:
    from swebench.harness.run_evaluation import GIT_APPLY_CMDS

    return list(GIT_APPLY_CMDS)


def _put_file(env, path: str, text: str) -> None:
    """Write a file inside the sandbox through `execute` (base64 chunks; any backend, any size)."""
    data = base64.b64encode(text.encode("utf-8")).decode("ascii")
    q = shlex.quote(path)
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [""]
    cmds = [f"mkdir -p $(dirname {q}) && printf %s '{chunks[0]}' > {q}.b64"]
    cmds += [f"printf %s '{c}' >> {q}.b64" for c in chunks[1:]]
    cmds[-1] += f" && base64 -d {q}.b64 > {q} && rm -f {q}.b64"
    for cmd in cmds:
        obs = env.execute(cmd, timeout=SETUP_TIMEOUT)
        if obs.returncode != 0:
            raise RuntimeError(f"cannot write {path} in the sandbox: {obs.output.strip()[-300:]}")


def _put_files(env, files: dict[str, str]) -> None:
    """Several files in one command when they are small (each command is a round trip)."""
    enc = {p: base64.b64encode(t.encode("utf-8")).decode("ascii") for p, t in files.items()}
    if sum(map(len, enc.values())) > CHUNK:
        for p, t in files.items():
            _put_file(env, p, t)
        return
    cmd = " && ".join(
        f"mkdir -p $(dirname {shlex.quote(p)}) && printf %s '{d}' | base64 -d > {shlex.quote(p)}"
        for p, d in enc.items()
    )
    obs = env.execute(cmd, timeout=SETUP_TIMEOUT)
    if obs.returncode != 0:
        raise RuntimeError(f"cannot write {', '.join(files)} in the sandbox: {obs.output.strip()[-300:]}")


def _read_files(env, paths: list[str]) -> list[str]:
    """The texts of files inside the sandbox (missing ones read as ""), in one command. A path
    starting with `<(` is a process substitution, passed unquoted."""
    sep = f"@@swesrl-{secrets.token_hex(8)}@@"
    cmd = "; ".join(
        f"echo {sep}; head -c {MAX_LOG_BYTES} {p if p.startswith('<(') else shlex.quote(p)} 2>/dev/null"
        for p in paths
    )
    out = env.execute(cmd, timeout=SETUP_TIMEOUT).output
    parts = out.split(sep + "\n")[1:]
    return [p for p in parts] + [""] * (len(paths) - len(parts))


ACTIVATE = CONDA_ACTIVATE


def _eval_parts(spec: EvalSpec) -> tuple[list[str], list[str]]:
    """(set-up lines, test lines) of `spec.eval_script` (`split_eval_script`). The set-up (environment
    activation, eval commands, install, test-file reset and test patch) runs as one command; the test
    lines run as a command of their own, so the log is exactly what the tests printed and their exit
    status comes from the sandbox's runner, after every process they left was killed. The test lines
    start in the directory the set-up ended in, as in one script. Before a script's own set-up the
    files `test_patch` touches are reset (those base_commit lacks removed), so a model patch cannot
    pre-create a file the test patch adds (SWE-bench's reset covers existing files only)."""

    if spec.eval_script is None:  # an EvalSpec made by hand
        return [], [f"cd {WORKDIR}", ACTIVATE, spec.test_cmd or ""]
    header, setup, tests = split_eval_script(spec.eval_script)
    if spec.kind != "test_cmd" and spec.test_files:  # a test_cmd script starts with this reset
        setup = [reset_test_files(spec.base_commit, spec.test_files), *setup]
    cwd = "SWESRL_EVAL_CWD"
    return (
        [*header, *setup, f'export {cwd}="$PWD"'],
        [f'cd "${{{cwd}:-{WORKDIR}}}"; unset {cwd}', *header, *tests],
    )


def _expects_reporter(spec: EvalSpec, test_lines: list[str]) -> bool:
    """pytest runs get the harness's reporter; tox (sphinx) filters the environment it needs."""
    text = "\n".join(test_lines)
    return spec.log_parser in LINE_PARSERS and "pytest" in text and "tox " not in text


def _reset_test_infrastructure(env, base_commit: str) -> list[str]:
    """Reset what the applied patch changed in the test infrastructure (see `integrity.py`);
    returns `path (reason)` for each. Runs before any patched code has run."""
    obs = env.execute(changes_script(base_commit), timeout=SETUP_TIMEOUT)
    if obs.returncode != 0:
        raise RuntimeError(f"cannot list the patch's changes: {obs.output.strip()[-300:]}")
    changes = parse_raw_diff(obs.output)
    found: dict[str, str] = {}
    for c in changes:
        why = infra_reason(c)
        if why:
            found[c.path] = why
    configs = [p for p in config_paths(changes) if p not in found]
    if configs:
        b = shlex.quote(base_commit)
        before = _read_files(
            env, [f"<(git -C {WORKDIR} show {b}:{shlex.quote(p)} 2>/dev/null)" for p in configs]
        )
        after = _read_files(env, [f"{WORKDIR}/{p}" for p in configs])
        for p, old, new in zip(configs, before, after, strict=True):
            name = Path(p).name
            if pytest_config(name, old) != pytest_config(name, new):
                found[p] = f"pytest configuration in {name}"
    if not found:
        return []
    existed = {c.path for c in changes if not c.added}
    obs = env.execute(reset_script(base_commit, sorted(found), existed), timeout=SETUP_TIMEOUT)
    if obs.returncode != 0:
        raise RuntimeError(f"cannot reset test infrastructure: {obs.output.strip()[-300:]}")
    return [f"{p} ({why})" for p, why in sorted(found.items())]


def _reset_and_apply_tests(env, instance: Instance, spec: EvalSpec, scratch: str) -> tuple[bool, str]:
    base = shlex.quote(instance["base_commit"])
    cmds = [f"cd {WORKDIR}"]
    for f in spec.test_files:
        q = shlex.quote(f)
        cmds.append(
            f"if git cat-file -e {base}:{q} 2>/dev/null; then git checkout {base} -- {q}; else rm -rf -- {q}; fi"
        )
    if instance.get("test_patch", "").strip():
        _put_file(env, f"{scratch}/test.patch", instance["test_patch"])
        cmds.append(f"git apply --verbose {scratch}/test.patch")
    obs = env.execute(" && ".join(cmds), timeout=SETUP_TIMEOUT)
    return obs.returncode == 0, obs.output


def _apply_patch(env, scratch: str) -> tuple[bool, str]:
    """SWE-bench's chain of apply commands, a clean tree before each retry; then the reverse check."""
    from swebench.harness.constants import APPLY_PATCH_FAIL, APPLY_PATCH_PASS

    logs = []
    pf = f"{scratch}/model.patch"
    for k, cmd in enumerate(_apply_cmds()):
        if k:
            env.execute(f"cd {WORKDIR} && git checkout -- . ; git clean -fd", timeout=SETUP_TIMEOUT)
        obs = env.execute(f"cd {WORKDIR} && {cmd} {pf}", timeout=SETUP_TIMEOUT)
        if obs.returncode == 0:
            logs.append(f"{APPLY_PATCH_PASS} ({cmd}):\n{obs.output}")
            return True, "\n".join(logs)
        logs.append(f"Failed to apply patch: {cmd}\n{obs.output}")
    obs = env.execute(f"cd {WORKDIR} && git apply --check --reverse {pf}", timeout=SETUP_TIMEOUT)
    if obs.returncode == 0:
        logs.append(f"{APPLY_PATCH_PASS}: verified already applied")
        return True, "\n".join(logs)
    logs.append(APPLY_PATCH_FAIL)
    return False, "\n".join(logs)


def _open_env(instance: Instance, spec: EvalSpec, config: SandboxConfig, mirror):
    """A fresh sandbox at base_commit. Docker: SWE-bench-style instances (classic fallback, swebench 5)
    and instances whose repository is not in the mirror use the repository inside their image."""

    cfg = config.model_copy(update={"max_output_bytes": max(config.max_output_bytes, MAX_LOG_BYTES + 4096)})
    if (
        config.backend == "docker"
        and spec.image
        and (spec.kind in ("classic", "eval_script") or repo_source(instance, mirror) is None)
    ):
        return DockerEnv(None, instance["base_commit"], cfg, image=spec.image)
    inst = dict(instance)
    if spec.image and config.backend == "docker":
        inst["image_name"] = spec.image
    return env_for_instance(inst, cfg, mirror)


def run_instance(
    instance: Instance,
    patch: str | None,
    config: SandboxConfig,
    mirror: str | Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    namespace: str = DEFAULT_NAMESPACE,
    allow_empty: bool = False,
    model_name: str = "",
) -> tuple[dict[str, Any], str]:
    """Evaluate one patch; returns (report, test_output text). Never raises for a bad patch or log."""
    t0 = time.monotonic()
    iid = instance["instance_id"]
    nonce = secrets.token_hex(8)
    report: dict[str, Any] = {
        "instance_id": iid,
        "model_name_or_path": model_name,
        "status": Status.ERROR.value,
        "resolved": False,
        "patch_is_None": patch is None,
        "patch_exists": bool(patch and patch.strip()),
        "patch_successfully_applied": False,
        "tests_status": None,
        "test_exit_code": None,
        "timed_out": False,
        "log_rejected": None,
        "error": None,
        "backend": config.backend,
        "nonce": nonce,
    }

    def done(status: Status, output: str = "", **kw) -> tuple[dict[str, Any], str]:
        report.update(kw, status=status.value, duration_s=round(time.monotonic() - t0, 3))
        report["resolved"] = status is Status.RESOLVED
        return report, output

    spec = make_eval_spec(instance, namespace)
    report["kind"] = spec.kind
    if spec.problems:
        return done(Status.ERROR, error="; ".join(spec.problems))
    empty = not (patch and patch.strip())
    if empty and not allow_empty:
        return done(Status.EMPTY_PATCH)
    pre: list[str] = []
    if not empty:
        ok, msg = check_patch(patch)
        pre.append(f"patch check: {msg}")
        if not ok:
            return done(Status.PATCH_APPLY_FAILED, "\n".join(pre) + "\n", error=msg)
    scratch = f"/tmp/swesrl_eval_{nonce}"
    try:
        env = _open_env(instance, spec, config, mirror)
    except Exception as e:  # noqa: BLE001 - a sandbox that does not start is this instance's error
        return done(Status.ERROR, error=f"sandbox: {e}")
    try:
        with env:
            if not empty:
                _put_file(env, f"{scratch}/model.patch", patch)
                ok, msg = _apply_patch(env, scratch)
                pre.append(msg)
                if not ok:
                    return done(Status.PATCH_APPLY_FAILED, "\n".join(pre) + "\n", error="patch did not apply")
            report["patch_successfully_applied"] = True
            reset = _reset_test_infrastructure(env, instance["base_commit"])
            if reset:
                report["test_infrastructure_reset"] = reset
                pre.append(
                    "test infrastructure changed by the patch, reset to base_commit: " + ", ".join(reset)
                )
            if spec.eval_script is None:
                ok, msg = _reset_and_apply_tests(env, instance, spec, scratch)
                pre.append(f"test files reset, test patch applied:\n{msg}" if ok else msg)
                if not ok:
                    return done(Status.ERROR, "\n".join(pre) + "\n", error="test_patch did not apply")
            setup, test_lines = _eval_parts(spec)
            script = ["#!/bin/bash"]
            if setup:
                _put_file(
                    env, f"{scratch}/setup.sh", "\n".join([*setup, f"export -p > {scratch}/env.sh", ""])
                )
                pre.append(env.execute(f"bash {scratch}/setup.sh 2>&1", timeout=timeout).output)
                script.append(f"source {scratch}/env.sh")
            expect_reporter = _expects_reporter(spec, test_lines)
            files = {}
            if expect_reporter:  # written now: no patched code has run since the set-up ended
                files[f"{scratch}/reporter/{PLUGIN_NAME}.py"] = plugin_source()
                script.append(reporter_env(f"{scratch}/reporter"))
            files[f"{scratch}/test.sh"] = "\n".join([*script, *test_lines, ""])
            _put_files(env, files)
            cmd = f"bash {scratch}/test.sh < /dev/null 2>&1"
            run = getattr(env, "execute_reported", None)
            obs = run(cmd, timeout=timeout) if run is not None else env.execute(cmd, timeout=timeout)
            section = obs.output
    except Exception as e:  # noqa: BLE001
        log.exception("%s: evaluation failed", iid)
        return done(Status.ERROR, "\n".join(pre) + "\n", error=f"{type(e).__name__}: {e}")
    exit_code = None if obs.timed_out else obs.returncode
    reporter = read_reporter(obs.report) if obs.report is not None else None
    if expect_reporter and obs.report is None:
        log.warning("%s: this sandbox has no report channel; grading from the log alone", iid)
        expect_reporter = False

    if obs.timed_out:
        from swebench.harness.constants import TESTS_TIMEOUT

        out = format_test_output(
            "\n".join(pre),
            section,
            None,
            nonce,
            f"{TESTS_TIMEOUT}\nTimeout error: {timeout} seconds exceeded.",
        )
        return done(Status.TIMEOUT, out, timed_out=True, tests_status=failed_tests_report(spec))
    out = format_test_output("\n".join(pre), section, exit_code, nonce)
    g = grade(spec, section, exit_code, reporter, expect_reporter)
    return done(
        Status.RESOLVED if g["resolved"] else Status.UNRESOLVED,
        out,
        test_exit_code=exit_code,
        tests_status=g["tests_status"],
        log_rejected=g["log_rejected"],
    )


def grade_patch(
    instance: Instance,
    patch: str | None,
    config: SandboxConfig,
    mirror: str | Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    namespace: str = DEFAULT_NAMESPACE,
    allow_empty: bool = False,
    log_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate one patch in a fresh sandbox. The report's `resolved` is the RLVR reward.

    With `log_dir`, writes `patch.diff`, `test_output.txt` and (last, atomically) `report.json` there.
    """
    report, output = run_instance(instance, patch, config, mirror, timeout, namespace, allow_empty)
    if log_dir is not None:
        write_instance_outputs(Path(log_dir), report, patch, output)
    return report


def write_instance_outputs(d: Path, report: dict[str, Any], patch: str | None, output: str) -> None:
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_text(d / PATCH, patch or "")
    atomic_write_text(d / TEST_OUTPUT, output)
    atomic_write_json(d / REPORT, {report["instance_id"]: report})


def read_report(d: Path, instance_id: str) -> dict[str, Any] | None:
    """The report of a finished instance, or None (absent, unreadable, or for another id)."""
    try:
        data = json.loads((d / REPORT).read_text(encoding="utf-8"))
        rep = data[instance_id]
        return rep if isinstance(rep, dict) and "status" in rep else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
