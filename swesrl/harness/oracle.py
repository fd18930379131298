"""The paper's "oracle file edit" setting: the model sees the issue and the full text of the files the
gold patch touches (at base_commit) and answers with edits; the edits become a patch.

Edits are read robustly from either form (the first that yields edits wins):

* search/replace blocks (Aider / Agentless): a file path line, then
  `<<<<<<< SEARCH`, the old lines, `=======`, the new lines, `>>>>>>> REPLACE`; code fences, `###`
  or `File:` before the path are ignored, and a path is matched to the shown files by suffix or
  base name. A SEARCH text that is not found verbatim is matched ignoring trailing spaces, then
  ignoring indentation (the replacement is re-indented by the same offset).
* a unified diff (in a ```diff fence or bare); its hunks are placed by their text, not by their
  line numbers, so a diff with wrong numbers still applies.

The patch is then made by git from the old and new file contents, so it always applies cleanly.
"""

from __future__ import annotations

import logging
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from swesrl.config import StrictModel, load_config
from swesrl.core.instances import Instance, repo_source
from swesrl.harness.spec import patch_files
from swesrl.utils import OnProgress, UserError, append_jsonl

log = logging.getLogger(__name__)


class OracleConfig(StrictModel):
    """The oracle prompt; defaults in `swesrl/config/oracle.yaml` (`load_oracle_config`)."""

    system_template: str
    """System message (Jinja2)."""
    user_template: str
    """Task message (Jinja2; variables: problem_statement, hints_text, files = [{path, content}])."""
    max_file_chars: int = 200_000
    """Files longer than this are cut (head kept) in the prompt."""
    include_hints: bool = False
    """Offer `hints_text` to the template (SWE-bench's oracle setting leaves hints out)."""


def load_oracle_config(sources: list[str | Path] | None = None) -> OracleConfig:
    """The bundled `oracle.yaml`, then the given YAML files / `key=value` overrides."""
    return load_config(OracleConfig, ["oracle.yaml", *(sources or [])])


# -- reading the files at base_commit ---------------------------------------------------------


class RepoReader:
    """`git show <commit>:<path>` on a mirror's bare repo, folder or bundle (bundles cloned once)."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="swesrl-oracle-")
        self._clones: dict[Path, Path] = {}

    def _gitdir(self, source: Path) -> Path:
        if source.is_file():  # a bundle
            if source not in self._clones:
                dst = Path(self._tmp.name) / f"{len(self._clones)}.git"
                r = subprocess.run(
                    ["git", "clone", "-q", "--bare", str(source), str(dst)], capture_output=True, text=True
                )
                if r.returncode != 0:
                    raise UserError(f"cannot read bundle {source}: {r.stderr.strip()[-200:]}")
                self._clones[source] = dst
            return self._clones[source]
        return source

    def read(self, source: Path, commit: str, path: str) -> str | None:
        r = subprocess.run(
            ["git", "-C", str(self._gitdir(source)), "show", f"{commit}:{path}"], capture_output=True
        )
        return r.stdout.decode("utf-8", errors="replace") if r.returncode == 0 else None

    def close(self) -> None:
        self._tmp.cleanup()


def oracle_files(instance: Instance, mirror: str | Path | None, reader: RepoReader) -> dict[str, str]:
    """{path: text at base_commit} of the files the gold patch touches and that exist there."""
    source = repo_source(instance, mirror)
    if source is None:
        raise UserError(f"{instance['instance_id']}: no repository for {instance['repo']} in mirror {mirror}")
    out = {}
    for p in patch_files(instance.get("patch", "")):
        text = reader.read(source, instance["base_commit"], p)
        if text is not None:
            out[p] = text
    return out


def build_messages(instance: Instance, files: dict[str, str], cfg: OracleConfig) -> list[dict[str, str]]:
    from jinja2 import Environment, StrictUndefined

    env = Environment(undefined=StrictUndefined, keep_trailing_newline=True)
    shown = [
        {
            "path": p,
            "content": t if len(t) <= cfg.max_file_chars else t[: cfg.max_file_chars] + "\n[... cut ...]\n",
        }
        for p, t in files.items()
    ]
    variables = {
        "problem_statement": instance["problem_statement"],
        "hints_text": instance.get("hints_text", "") if cfg.include_hints else "",
        "files": shown,
    }
    return [
        {"role": "system", "content": env.from_string(cfg.system_template).render(**variables)},
        {"role": "user", "content": env.from_string(cfg.user_template).render(**variables)},
    ]


# -- parsing edits ----------------------------------------------------------------------------

_BLOCK = re.compile(
    r"^[ \t]*<{5,9} ?SEARCH[^\n]*\n(.*?)^[ \t]*={5,9}[ \t]*\n(.*?)^[ \t]*>{5,9} ?REPLACE[^\n]*$",
    re.M | re.S,
)
_FENCE = re.compile(r"^\s*(```|~~~)")


def _strip_think(text: str) -> str:
    i = text.rfind("</think>")
    return text[i + len("</think>") :] if i >= 0 else text


def resolve_path(raw: str, known: list[str]) -> str | None:
    """Match a path the model wrote to one of the shown files (exact, a/ b/ ./ prefix, suffix, base name)."""
    p = raw.strip().strip("`*'\":").strip()
    p = re.sub(r"^(#+|File:|FILE:|Path:|path:)\s*", "", p).strip().strip("`*'\":").strip()
    for pre in ("a/", "b/", "./", "/testbed/", "/"):
        if p.startswith(pre) and p[len(pre) :] in known:
            return p[len(pre) :]
    if p in known:
        return p
    suffix = [k for k in known if p and (k.endswith("/" + p) or p.endswith("/" + k))]
    if len(suffix) == 1:
        return suffix[0]
    base = [k for k in known if p and k.rsplit("/", 1)[-1] == p.rsplit("/", 1)[-1]]
    if len(base) == 1:
        return base[0]
    return None


def _path_before(text: str, start: int) -> str | None:
    for line in reversed(text[:start].splitlines()[-4:]):
        s = line.strip()
        if not s:
            continue
        if _FENCE.match(s):
            parts = s.strip("`~").split()
            if len(parts) >= 2 and ("/" in parts[-1] or "." in parts[-1]):
                return parts[-1]
            continue
        return s
    return None


def _split(s: str) -> list[str]:
    return s.splitlines(keepends=True)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def replace_once(content: str, search: str, replace: str) -> str | None:
    """`content` with the first occurrence of `search` replaced; None if not found even loosely."""
    if search in content:
        return content.replace(search, replace, 1)
    lines, old, new = _split(content), _split(search), _split(replace)
    if not old:
        return None
    n = len(old)
    for i in range(len(lines) - n + 1):  # trailing whitespace ignored
        if all(lines[i + k].rstrip() == old[k].rstrip() for k in range(n)):
            return "".join(lines[:i] + new + lines[i + n :])
    for i in range(len(lines) - n + 1):  # indentation ignored: re-indent the replacement
        if all(lines[i + k].strip() == old[k].strip() for k in range(n)):
            first = next((k for k in range(n) if old[k].strip()), 0)
            have, want = _indent(old[first]), _indent(lines[i + first])
            fixed = []
            for ln in new:
                if ln.strip() and ln.startswith(have):
                    ln = want + ln[len(have) :]
                elif ln.strip() and len(want) > len(have):
                    ln = want[: len(want) - len(have)] + ln
                fixed.append(ln)
            if fixed and not fixed[-1].endswith("\n") and i + n < len(lines):
                fixed[-1] += "\n"
            return "".join(lines[:i] + fixed + lines[i + n :])
    return None


def parse_search_replace(text: str, files: dict[str, str]) -> tuple[dict[str, str], list[str], int]:
    """Apply search/replace blocks to `files`; returns (new contents of changed files, problems, n blocks)."""
    known = list(files)
    cur = dict(files)
    changed: set[str] = set()
    problems: list[str] = []
    blocks = list(_BLOCK.finditer(text))
    last_raw: str | None = None
    for k, m in enumerate(blocks, 1):
        search, replace = m.group(1), m.group(2)
        raw = _path_before(text, m.start())
        if raw and re.match(r">{5,9} ?REPLACE", raw):  # a second block for the file of the one before
            raw = last_raw
        last_raw = raw
        path = resolve_path(raw, known) if raw else None
        if path is None and raw and not search.strip():
            path = raw.strip().strip("`*'\":").lstrip("#").strip()  # a new file
            path = re.sub(r"^(a/|b/|\./)", "", path)
        if path is None and len(known) == 1:
            path = known[0]
        if path is None:
            what = f"file {raw!r} was not shown" if raw else "no file path line before it"
            problems.append(f"edit {k}: {what}")
            continue
        if search == replace:
            continue
        if not search.strip():
            if cur.get(path):
                problems.append(f"edit {k}: empty SEARCH for existing file {path}")
                continue
            cur[path] = replace
            changed.add(path)
            continue
        if path not in cur:
            problems.append(f"edit {k}: file {path} was not shown")
            continue
        new = replace_once(cur[path], search, replace)
        if new is None:
            problems.append(f"edit {k}: SEARCH text not found in {path}")
            continue
        cur[path] = new
        changed.add(path)
    return {p: cur[p] for p in changed}, problems, len(blocks)


_DIFF_FENCE = re.compile(r"```(?:diff|patch|udiff)?[^\n]*\n(.*?)```", re.S)


def _diff_text(text: str) -> str | None:
    for m in _DIFF_FENCE.finditer(text):
        if re.search(r"^--- ", m.group(1), re.M) and re.search(r"^\+\+\+ ", m.group(1), re.M):
            return m.group(1)
    m = re.search(r"^(diff --git |--- )", text, re.M)
    return text[m.start() :] if m else None


def parse_unified_diff(text: str, files: dict[str, str]) -> tuple[dict[str, str], list[str], int]:
    """Apply a unified diff's hunks to `files` by their text (line numbers are only a hint)."""
    from unidiff import PatchSet
    from unidiff.errors import UnidiffParseError

    diff = _diff_text(text)
    if diff is None:
        return {}, [], 0
    if not diff.endswith("\n"):
        diff += "\n"
    try:
        ps = PatchSet(diff)
    except UnidiffParseError as e:
        return {}, [f"unified diff does not parse: {e}"], 1
    known = list(files)
    out: dict[str, str] = {}
    problems: list[str] = []
    for pf in ps:
        raw = pf.target_file if pf.source_file == "/dev/null" else pf.source_file
        path = resolve_path(raw, known) or (re.sub(r"^(a/|b/)", "", raw) if pf.is_added_file else None)
        if path is None:
            problems.append(f"diff: file {raw} was not shown")
            continue
        if pf.is_added_file:
            out[path] = "".join(ln.value for h in pf for ln in h if ln.is_added)
            continue
        content = out.get(path, files.get(path, ""))
        for h in pf:
            old = "".join(ln.value for ln in h if ln.is_context or ln.is_removed)
            new = "".join(ln.value for ln in h if ln.is_context or ln.is_added)
            res = replace_once(content, old, new) if old else content + new
            if res is None:
                problems.append(f"diff: a hunk of {path} does not match the file")
                continue
            content = res
        out[path] = content
    return out, problems, len(ps)


def make_patch(old: dict[str, str], new: dict[str, str]) -> str:
    """A git patch turning `old` into `new` (files absent from `old` are created)."""
    changed = {p: t for p, t in new.items() if old.get(p) != t}
    if not changed:
        return ""
    with tempfile.TemporaryDirectory(prefix="swesrl-patch-") as d:
        root = Path(d)

        def git(*args: str) -> str:
            r = subprocess.run(["git", "-C", d, *args], capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"git {args[0]} failed: {r.stderr.strip()[-300:]}")
            return r.stdout

        git("init", "-q")
        for p in changed:
            if p in old:
                (root / p).parent.mkdir(parents=True, exist_ok=True)
                (root / p).write_text(old[p], encoding="utf-8")
        git("add", "-A")
        git(
            "-c",
            "user.name=swesrl",
            "-c",
            "user.email=swesrl@localhost",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "base",
        )
        for p, t in changed.items():
            (root / p).parent.mkdir(parents=True, exist_ok=True)
            (root / p).write_text(t, encoding="utf-8")
        git("add", "-A")
        return git("-c", "core.quotePath=false", "diff", "--cached", "--no-color", "--no-ext-diff")


def edits_to_patch(text: str, files: dict[str, str]) -> tuple[str, list[str]]:
    """The model's answer -> (patch, problems). Search/replace blocks first, else a unified diff."""
    body = _strip_think(text)
    new, problems, n = parse_search_replace(body, files)
    if not n:
        new, problems, n = parse_unified_diff(body, files)
    if not n:
        problems = ["no search/replace block and no unified diff in the answer"]
    return make_patch(files, new), problems


# -- the command ------------------------------------------------------------------------------


def _done_ids(path: Path) -> set[str]:
    """Ids already in a predictions file; a line cut short by a crash is ignored (and redone)."""
    import json

    done: set[str] = set()
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                done.add(json.loads(line)["instance_id"])
            except (ValueError, KeyError, TypeError):
                continue
    return done


def run_oracle(
    instances: list[Instance],
    model: Any,
    out_dir: str | Path,
    mirror: str | Path | None,
    cfg: OracleConfig | None = None,
    model_name: str = "",
    max_new_tokens: int = 2048,
    temperature: float = 0.0,
    on_progress: OnProgress | None = None,
) -> dict[str, Any]:
    """Writes `out_dir/predictions.jsonl` (for `swesrl eval`) and `out_dir/outputs.jsonl` (prompts'
    sizes, raw answers, parse problems). Instances already in predictions.jsonl are skipped."""

    cfg = cfg or load_oracle_config()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    preds_path, raw_path = out / "predictions.jsonl", out / "outputs.jsonl"
    done = _done_ids(preds_path)
    todo = [i for i in instances if i["instance_id"] not in done]
    name = model_name or getattr(model, "name", "model")
    stats = {
        "written": 0,
        "skipped": len(instances) - len(todo),
        "empty": 0,
        "parse_problems": 0,
        "failed": 0,
    }
    reader = RepoReader()
    report = on_progress or (lambda *a: None)
    try:
        for k, inst in enumerate(todo, 1):
            iid = inst["instance_id"]
            files = oracle_files(inst, mirror, reader)
            messages = build_messages(inst, files, cfg)
            try:
                answer = model.generate(
                    messages, n=1, max_new_tokens=max_new_tokens, temperature=temperature
                )[0]
            except Exception as e:  # noqa: BLE001 - one failed call must not stop the batch
                log.error("%s: generation failed: %s", iid, e)
                stats["failed"] += 1
                report("oracle edits", k, len(todo), "")
                continue
            patch, problems = edits_to_patch(answer, files)
            stats["empty"] += not patch
            stats["parse_problems"] += bool(problems)
            append_jsonl(
                raw_path,
                {
                    "instance_id": iid,
                    "files": list(files),
                    "answer": answer,
                    "problems": problems,
                    "patch": patch,
                },
            )
            append_jsonl(preds_path, {"instance_id": iid, "model_name_or_path": name, "model_patch": patch})
            stats["written"] += 1
            report("oracle edits", k, len(todo), f"{stats['written'] - stats['empty']} non-empty")
    finally:
        reader.close()
    return {**stats, "predictions": str(preds_path)}
