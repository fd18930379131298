"""Small shared helpers: user errors, the parallel map, JSON(L) I/O with atomic writes, logging, and the
CLI's progress bars (library code reports progress through `OnProgress` callbacks; bars are drawn only by
the command that passes one in)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

OnProgress = Callable[[str, int, "int | None", str], None]
"""`on_progress(label, completed, total, status)`: work labelled `label` has `completed` of `total` items
(None: unknown) done; `status` is a short text (counts so far). One bar per label in `progress_bars`."""


class UserError(Exception):
    """A mistake in the user's input. The CLI prints its message on one line and exits non-zero."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a resumable batch after `done` of `total` items; what was done is on disk."""

    def __init__(self, done: int, total: int, summary: Any = None):
        super().__init__(f"interrupted: {done} of {total} done")
        self.done, self.total, self.summary = done, total, summary


def run_in_threads(
    fn: Callable[[T], R], items: Iterable[T], workers: int
) -> Iterator[tuple[T, R | None, BaseException | None]]:
    """Call `fn(item)` for every item on `workers` threads; yield `(item, result, exception)` as
    each call ends (exception None when it returned).

    Unlike ThreadPoolExecutor, the threads are daemons: once the generator is closed (or the
    consumer is interrupted, e.g. by Ctrl-C), no further item starts and the calls still running
    are abandoned, never joined, so the program can exit at once instead of waiting for them.
    """
    items = list(items)
    jobs: queue.SimpleQueue = queue.SimpleQueue()
    for item in items:
        jobs.put(item)
    results: queue.Queue = queue.Queue()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                item = jobs.get_nowait()
            except queue.Empty:
                return
            try:
                results.put((item, fn(item), None))
            except BaseException as e:  # noqa: BLE001 - handed to the consumer
                results.put((item, None, e))

    for n in range(min(workers, len(items))):
        threading.Thread(target=work, name=f"swesrl-worker-{n}", daemon=True).start()
    try:
        for _ in items:
            yield results.get()
    finally:
        stop.set()


def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int = 1,
    *,
    done: Callable[[T], bool] | None = None,
    label: str = "",
    on_progress: OnProgress | None = None,
    status: Callable[[], str] | None = None,
) -> Iterator[tuple[T, R | None, BaseException | None]]:
    """`run_in_threads` with resume and progress: items for which `done(item)` holds are skipped (their
    result is on disk already); after each call, `on_progress(label, finished, to_do, status())`.
    Yields `(item, result, exception)` for the items it runs, as each call ends (Ctrl-C: see
    `run_in_threads`)."""
    todo = [i for i in items if done is None or not done(i)]
    report = on_progress if on_progress and todo else (lambda *a: None)
    text = status or (lambda: "")
    report(label, 0, len(todo), "")
    with contextlib.closing(run_in_threads(fn, todo, workers)) as results:
        for n, (item, result, exc) in enumerate(results, 1):
            yield item, result, exc
            report(label, n, len(todo), text())


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _not_utf8(path: str | Path, offset: int, byte: int, line: int, head: bytes) -> UserError:
    hint = "; it looks like UTF-16: save it as UTF-8" if head[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
    return UserError(f"{path}: not UTF-8 text (byte 0x{byte:02x} at offset {offset}, line {line}){hint}")


def read_utf8(path: str | Path) -> str:
    """A file's text; a file that is not UTF-8 raises UserError naming the first bad byte."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise _not_utf8(path, e.start, data[e.start], line, data[:2]) from None


def iter_jsonl(path: str | Path) -> Iterator[dict]:
    """Yield one object per non-empty line (lines end at "\n" only, so a raw U+2028 inside a
    string is no line break); a bad line, or bytes that are not UTF-8, raise UserError naming file
    and line."""
    with open(path, "rb") as f:
        offset, head = 0, b""
        for lineno, raw in enumerate(f, 1):
            if lineno == 1:
                head = raw[:2]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _not_utf8(path, offset + e.start, raw[e.start], lineno, head) from None
            offset += len(raw)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield obj


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def append_jsonl(path: str | Path, row: dict) -> None:
    """Append one line and flush it to disk (a crash loses at most the line being written)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def setup_logging(level: int | str = logging.INFO) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    logging.basicConfig(
        level=level,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=Console(stderr=True), rich_tracebacks=False, show_path=False)],
        force=True,
    )


def make_progress(**kwargs):
    """The project's standard rich progress bar (spinner, bar, counts, elapsed, remaining)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        **kwargs,
    )


@contextlib.contextmanager
def step_bar(label: str, total: int | None, fmt: Callable[[dict], str] = lambda m: ""):
    """For commands: one progress line for a training stage; yields `on_step(step, max_steps, metrics)`
    (the trainers' progress hook), which moves the bar and shows `fmt(metrics)`."""
    with progress_bars() as on_progress:
        on_progress(label, 0, total if total and total > 0 else None, "")
        yield lambda step, max_steps, metrics: on_progress(label, step, max_steps or None, fmt(metrics))


@contextlib.contextmanager
def progress_bars(transient: bool = False) -> Iterator[OnProgress]:
    """For commands (only they print): yields an `OnProgress` that draws one rich bar per label."""
    with make_progress(transient=transient) as bar:
        jobs: dict[str, Any] = {}

        def on_progress(label: str, completed: int, total: int | None, status: str = "") -> None:
            if label not in jobs:
                jobs[label] = bar.add_task(label, total=total, status="")
            bar.update(jobs[label], completed=completed, total=total, status=status)

        yield on_progress


def choose_omp_wait_policy() -> str | None:
    """Before torch loads: OpenMP threads that spin while waiting crawl on a CPU other work keeps busy
    (generation ~10x slower, measured), but on idle cores PASSIVE makes a GRPO step 1.3-2x slower
    (`bench/srl_step.py`). So PASSIVE only when the 1-minute load is at least 3/4 of the cores,
    and never over a value the user set. Returns the policy set, or None."""
    if "OMP_WAIT_POLICY" in os.environ:
        return None
    try:
        busy = os.getloadavg()[0] >= 0.75 * (os.cpu_count() or 1)
    except OSError:
        return None
    if busy:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        return "PASSIVE"
    return None
