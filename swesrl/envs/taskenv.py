"""The Python environment a task's code runs with in the local sandbox: not the trainer's.

The trainer's environment holds torch, transformers and the rest, and every interpreter start in it
pays for its .pth hooks (an editable install costs ~11 ms per start). Tasks get their own: a
virtual environment made once per machine from the base interpreter, holding pytest and what it
needs (copied from the installed distributions, so no network), mounted read-only in every local
sandbox, first on PATH. SWE-bench-style instances that need more bring their own environment in
a Docker image.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement

log = logging.getLogger(__name__)

PACKAGES = ("pytest",)
"""Distributions (with their requirements) every task environment holds."""
LAYOUT = 2
"""Changes when an environment is built differently (2: byte-compiled), so old ones are not reused."""


def _closure(names: tuple[str, ...]) -> list[md.Distribution]:
    seen: dict[str, md.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen[key] = dist
        for req in dist.requires or []:
            r = Requirement(req)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r.name)
    return list(seen.values())


def _base_python() -> str:
    exe = getattr(sys, "_base_executable", None) or sys.executable
    return exe if os.path.exists(exe) else sys.executable


def task_env_path() -> Path:
    dists = _closure(PACKAGES)
    tag = ";".join(sorted(f"{d.metadata['Name']}=={d.version}" for d in dists))
    digest = hashlib.sha256(f"{LAYOUT}|{_base_python()}|{sys.version}|{tag}".encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "swesrl" / "taskenv"
    return cache / f"py{sys.version_info[0]}.{sys.version_info[1]}-{digest}"


_made: dict[str, Path | None] = {}


def task_env() -> Path | None:
    """The task environment's prefix (made on first use; None if it cannot be made here)."""
    path = task_env_path()
    if str(path) in _made:
        return _made[str(path)]
    if not (path / "bin" / "python3").exists():
        try:
            _build(path)
        except (OSError, subprocess.CalledProcessError) as e:
            log.warning(
                "cannot make the task environment at %s (%s); tasks use the trainer's Python", path, e
            )
            _made[str(path)] = None
            return None
    _made[str(path)] = path
    return path


def _build(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=path.parent))
    try:
        subprocess.run(
            [_base_python(), "-m", "venv", "--without-pip", str(tmp)], check=True, capture_output=True
        )
        site = Path(
            subprocess.run(
                [
                    str(tmp / "bin" / "python3"),
                    "-c",
                    "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
        for dist in _closure(PACKAGES):
            root = Path(dist.locate_file(""))
            for f in dist.files or []:
                src = Path(dist.locate_file(f))
                try:
                    rel = src.resolve().relative_to(root.resolve())
                except ValueError:  # console scripts and data outside site-packages
                    continue
                if "__pycache__" in rel.parts or not src.is_file():
                    continue
                dst = site / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        # byte-compiled once here: the environment is mounted read-only and tests run with -B, so
        # without this every test run compiled pytest again (its import: 0.32 s -> 0.12 s)
        subprocess.run(
            [
                str(tmp / "bin" / "python3"),
                "-m",
                "compileall",
                "-q",
                "-s",
                str(tmp),
                "-p",
                str(path),
                str(site),
            ],
            check=True,
            capture_output=True,
        )
        for name in ("pytest", "py.test"):
            script = tmp / "bin" / name
            script.write_text(
                f"#!{path}/bin/python3\nimport sys\nfrom pytest import console_main\nsys.exit(console_main())\n"
            )
            script.chmod(0o755)
        # the venv's own paths name the temporary folder: make them name the final one
        for f in (tmp / "pyvenv.cfg", *(tmp / "bin").iterdir()):
            if f.is_file() and not f.is_symlink():
                text = f.read_text(errors="surrogateescape")
                if str(tmp) in text:
                    f.write_text(text.replace(str(tmp), str(path)), errors="surrogateescape")
        try:
            tmp.rename(path)
        except OSError:  # another process made it first
            if not (path / "bin" / "python3").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
