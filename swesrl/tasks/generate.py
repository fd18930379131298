"""Generate the bundled offline task suite: small real Python repositories, each task one injected bug.

A suite folder holds `instances.jsonl` (SWE-bench schema + `test_cmd`, `family`, `split`),
`repos/<owner>__<name>.git` (bare git repositories) and `splits.json`.

Each repository is a package of 3-5 themed modules (see `catalog.py`) with a README, a
pyproject, pytest tests and a history of a few commits; names of the repository, package,
modules and functions and the layout (flat, `src/`, sub-packages) are drawn from the seed. Each
task has its own branch whose last commit is its `base_commit`; the buggy function is buggy from
the commit that introduced its module, so the history never shows the fix. Commits are written
with `git fast-import` with fixed authors and dates: the same seed gives the same commit ids.

Splits: `test` = every task of a held-out bug family (`catalog.TEST_FAMILIES`) plus every task of
a held-out repository (about a fifth of the repositories, drawn from the seed); `train` = the rest,
so a train task shares neither its family nor its repository with the held-out ones.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import logging
import math
import random
import re
import shutil
import subprocess
import textwrap
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from swesrl.tasks.catalog import FAMILIES, TEST_FAMILIES, THEMES, Bug, Snippet, Theme, apply_bug
from swesrl.utils import OnProgress, UserError, atomic_write_json, write_jsonl

log = logging.getLogger(__name__)

OWNER = "swesrl-bench"
MAX_N = 2000
"""Largest suite: 390 repository names x at most ~6 tasks each, with room to spare."""
TASKS_PER_REPO = 6
TEST_CMD = "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -B -m pytest -rA -p no:cacheprovider {test_file}"
"""`-B`: no .pyc, so a same-size edit made within a second of a test run is never masked by a stale cache;
no plugin autoload: the tasks need plain pytest, and host plugins slow every run."""
_PREFIXES = tuple(
    [
        "amber",
        "brisk",
        "cobalt",
        "dusty",
        "ember",
        "fable",
        "glint",
        "harbor",
        "ivory",
        "jolly",
        "koala",
        "lumen",
        "maple",
        "nimbus",
        "onyx",
        "pebble",
        "quartz",
        "rustic",
        "saffron",
        "tidal",
        "umber",
        "velvet",
        "willow",
        "xenon",
        "yonder",
        "zephyr",
    ]
)
_SUFFIXES = tuple(
    [
        "kit",
        "lib",
        "tools",
        "box",
        "core",
        "utils",
        "forge",
        "works",
        "craft",
        "lab",
        "py",
        "ware",
        "base",
        "stack",
        "hub",
    ]
)
_AUTHORS = (
    ("Ada Byrne", "ada@example.org"),
    ("Ravi Menon", "ravi@example.org"),
    ("Lena Vogt", "lena@example.org"),
    ("Tomás Ruiz", "tomas@example.org"),
    ("Mei Chen", "mei@example.org"),
)
_EPOCH = 1704067200  # 2024-01-01T00:00:00Z


@dataclass
class Module:
    theme: Theme
    name: str
    subpackage: str
    aliases: dict[str, str]
    """snippet key -> function name in this repository"""

    def import_path(self, package: str) -> str:
        return ".".join(p for p in (package, self.subpackage, self.name) if p)

    def file_path(self, package: str, src: bool) -> str:
        parts = (["src"] if src else []) + [package] + ([self.subpackage] if self.subpackage else [])
        return "/".join(parts + [f"{self.name}.py"])

    @property
    def test_path(self) -> str:
        return f"tests/test_{self.name}.py"


@dataclass
class RepoSpec:
    index: int
    name: str
    package: str
    src: bool
    version: str
    modules: list[Module]
    hour_step: int
    authors: list[tuple[str, str]]
    tasks: list[dict] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{OWNER}/{self.name}"


@dataclass(frozen=True)
class Site:
    repo: int
    module: int
    snippet: int
    bug: int


# ---------------------------------------------------------------- rendering code and tests


def render_function(snippet: Snippet, alias: str, bug: Bug | None = None) -> str:
    code = apply_bug(snippet.code, bug) if bug else snippet.code
    return code.replace("__fn__", alias)


def render_module(module: Module, bug_snippet: int | None = None, bug: Bug | None = None) -> str:
    imports = sorted({imp for s in module.theme.snippets for imp in s.imports})
    parts = [f'"""{module.theme.doc}"""\n']
    if imports:
        parts.append("\n".join(f"import {i}" for i in imports) + "\n")
    for i, snip in enumerate(module.theme.snippets):
        parts.append(render_function(snip, module.aliases[snip.key], bug if i == bug_snippet else None))
    return "\n\n".join(parts)


def render_test(alias: str, name: str, body: str) -> str:
    return f"def test_{alias}_{name}():\n{textwrap.indent(body.replace('__fn__', alias), '    ')}\n"


def module_tests(module: Module) -> list[tuple[str, str, int]]:
    """(test function name, source, snippet index) for every catalog test of the module, in file order."""
    out = []
    for i, snip in enumerate(module.theme.snippets):
        alias = module.aliases[snip.key]
        for name, body in snip.tests:
            out.append((f"test_{alias}_{name}", render_test(alias, name, body), i))
    return out


def render_test_file(module: Module, package: str, tests: list[str]) -> str:
    names = ", ".join(module.aliases[s.key] for s in module.theme.snippets)
    header = []
    if any("pytest." in t for t in tests):
        header.append("import pytest\n\n")
    header.append(f"from {module.import_path(package)} import {names}\n")
    return "".join(header) + "".join("\n\n" + t for t in tests)


# ---------------------------------------------------------------- running code in process


def _namespace(module_src: str) -> dict:
    import pytest

    ns: dict = {"__name__": "swesrl_suite_module", "pytest": pytest}
    exec(compile(module_src, "<module>", "exec"), ns)
    return ns


def run_tests_in_process(module_src: str, tests: list[str]) -> list[bool]:
    """Run test function sources in order against the module source (as pytest would, one process)."""
    ns = _namespace(module_src)
    names = []
    for src in tests:
        before = set(ns)
        exec(compile(src, "<test>", "exec"), ns)
        names.append(next(k for k in ns if k not in before and k.startswith("test_")))
    results = []
    for name in names:
        try:
            ns[name]()
            results.append(True)
        except Exception:
            results.append(False)
    return results


def repro_code(test_body: str, *, use_repr: bool = False) -> str:
    """Turn a test body into a script that prints what the test asserts about."""
    out = []
    for line in test_body.splitlines():
        if line.startswith("with pytest.raises"):
            continue
        line = line[4:] if line.startswith("    ") else line
        m = re.match(r"assert (.+?) (==|is) (.+)$", line)
        expr = m.group(1) if m else (line[len("assert ") :] if line.startswith("assert ") else None)
        if expr is not None:
            line = f"print(repr({expr}))" if use_repr else f"print({expr})"
        out.append(line)
    return "\n".join(out)


def run_repro(module_src: str, code: str) -> str:
    ns = _namespace(module_src)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            exec(compile(code, "<repro>", "exec"), ns)
        except Exception as e:
            last = traceback.format_exception_only(type(e), e)[-1].strip()
            buf.write(f"Traceback (most recent call last):\n  ...\n{last}\n")
    return buf.getvalue().rstrip("\n")


# ---------------------------------------------------------------- diffs


def unified_diff(path: str, old: str, new: str) -> str:
    """A `git diff`-style patch of one text file (accepted by `git apply` and `patch -p1`)."""
    lines = list(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{path}", f"b/{path}", n=3
        )
    )
    if not lines:
        return ""
    return f"diff --git a/{path} b/{path}\n" + "".join(lines)


# ---------------------------------------------------------------- issues

_TEMPLATES = (
    """{title}

{symptom}

To reproduce:

```python
{repro}
```

Output:

```
{actual}
```

Expected:

```
{expected}
```

This is with {package} {version} on Python 3.11.
""",
    """{title}

### Describe the bug

{symptom}

### Steps to reproduce

```python
{repro}
```

### Expected behavior

```
{expected}
```

### Actual behavior

```
{actual}
```

### Environment

- {package} {version}
- Python 3.11 on Linux
""",
    """{title}

Hi! I ran into this while using `{func}` from `{import_path}`. {symptom}

Minimal example:

```python
{repro}
```

This prints

```
{actual}
```

but I would expect

```
{expected}
```

Thanks for looking into it!
""",
    """{title}

{symptom}

```python
>>> {repro_inline}
```

Actual result:
```
{actual}
```

Expected result:
```
{expected}
```
""",
)


def render_issue(
    rng: random.Random,
    bug: Bug,
    alias: str,
    import_path: str,
    package: str,
    version: str,
    buggy_src: str,
    fixed_src: str,
) -> str:
    for use_repr in (False, True):
        body = repro_code(bug.test.replace("__fn__", alias), use_repr=use_repr)
        repro = f"from {import_path} import {alias}\n\n{body}"
        actual, expected = run_repro(buggy_src, body), run_repro(fixed_src, body)
        if actual != expected:
            break
    else:
        raise RuntimeError(f"reproduction of {alias} ({bug.family}) shows no difference")
    template = rng.choice(_TEMPLATES)
    return template.format(
        title=bug.title.replace("__fn__", alias),
        symptom=bug.symptom.replace("__fn__", alias),
        repro=repro,
        repro_inline=repro.replace("\n\n", "\n").replace("\n", "\n>>> "),
        actual=actual,
        expected=expected,
        package=package,
        version=version,
        func=alias,
        import_path=import_path,
    )


# ---------------------------------------------------------------- repositories


def _readme(repo: RepoSpec, full: bool) -> str:
    text = f"# {repo.name}\n\n`{repo.package}` is a small pure-Python utility library.\n"
    if not full:
        return text
    lines = [text, "## Modules\n"]
    for m in repo.modules:
        funcs = ", ".join(f"`{m.aliases[s.key]}`" for s in m.theme.snippets)
        lines.append(f"- `{m.import_path(repo.package)}`: {m.theme.doc} ({funcs})")
    m0 = repo.modules[0]
    lines += [
        "\n## Usage\n",
        "```python",
        f"from {m0.import_path(repo.package)} import {m0.aliases[m0.theme.snippets[0].key]}",
        "```\n",
        "## Development\n",
        "The library has no dependencies. Run the test suite with:\n",
        "```\npython3 -m pytest\n```",
    ]
    return "\n".join(lines) + "\n"


def _pyproject(repo: RepoSpec) -> str:
    return (
        f'[project]\nname = "{repo.name}"\nversion = "{repo.version}"\n'
        f'description = "Small pure-Python utilities"\nrequires-python = ">=3.9"\n\n'
        f'[tool.pytest.ini_options]\ntestpaths = ["tests"]\npythonpath = ["{"src" if repo.src else "."}"]\n'
    )


def _package_inits(repo: RepoSpec) -> dict[str, str]:
    root = ("src/" if repo.src else "") + repo.package
    files = {
        f"{root}/__init__.py": f'"""{repo.name}: small pure-Python utilities."""\n\n__version__ = "{repo.version}"\n'
    }
    for m in repo.modules:
        if m.subpackage:
            files[f"{root}/{m.subpackage}/__init__.py"] = ""
    return files


def repo_history(repo: RepoSpec, site: Site | None) -> tuple[list[tuple[str, dict[str, str]]], dict]:
    """The commits (message, full snapshot) of a repository with the bug of `site`; plus task details."""
    snapshots: list[tuple[str, dict[str, str]]] = []
    files: dict[str, str] = {
        ".gitignore": "__pycache__/\n*.pyc\n.pytest_cache/\n*.egg-info/\n",
        "pyproject.toml": _pyproject(repo),
        "README.md": _readme(repo, full=False),
        **_package_inits(repo),
    }
    detail: dict = {}
    for i, m in enumerate(repo.modules):
        bug_snip = site.snippet if site and site.module == i else None
        bug = m.theme.snippets[bug_snip].bugs[site.bug] if bug_snip is not None else None
        src = render_module(m, bug_snip, bug)
        tests = module_tests(m)
        if bug is not None:
            tests, detail = _task_tests(repo, m, bug_snip, bug, src, tests)
        files[m.file_path(repo.package, repo.src)] = src
        files[m.test_path] = render_test_file(m, repo.package, [t for _, t, _ in tests])
        if i == 0:
            snapshots.append(("Initial commit", dict(files)))
        elif i == len(repo.modules) - 1 or i % 2 == 1:
            snapshots.append((f"Add {m.name} module", dict(files)))
    files["README.md"] = _readme(repo, full=True)
    files["CHANGELOG.md"] = f"# Changelog\n\n## {repo.version}\n\n" + "".join(
        f"- Add `{m.import_path(repo.package)}`.\n" for m in repo.modules
    )
    snapshots.append(("Document modules and add a changelog", dict(files)))
    return snapshots, detail


def _task_tests(repo: RepoSpec, m: Module, bug_snip: int, bug: Bug, buggy_src: str, tests: list):
    """Keep the tests that pass on the buggy code; build the new failing test and the gold data."""
    alias = m.aliases[m.theme.snippets[bug_snip].key]
    fixed_src = render_module(m, None, None)
    ok = run_tests_in_process(buggy_src, [t for _, t, _ in tests])
    kept = [t for t, passed in zip(tests, ok, strict=True) if passed]
    new_name = f"test_{alias}_{bug.test_name}"
    new_src = render_test(alias, bug.test_name, bug.test)
    srcs = [t for _, t, _ in kept] + [new_src]
    if run_tests_in_process(buggy_src, srcs)[-1] or not all(run_tests_in_process(fixed_src, srcs)):
        raise RuntimeError(f"catalog bug: test {new_name} does not separate the bug ({bug.family})")
    test_before = render_test_file(m, repo.package, [t for _, t, _ in kept])
    test_after = render_test_file(m, repo.package, srcs)
    src_path = m.file_path(repo.package, repo.src)
    detail = {
        "alias": alias,
        "bug": bug,
        "module": m,
        "buggy_src": buggy_src,
        "fixed_src": fixed_src,
        "patch": unified_diff(src_path, buggy_src, fixed_src),
        "test_patch": unified_diff(m.test_path, test_before, test_after),
        "FAIL_TO_PASS": [f"{m.test_path}::{new_name}"],
        "PASS_TO_PASS": [f"{m.test_path}::{name}" for name, _, _ in kept],
    }
    return kept, detail


def _fast_import_stream(
    branches: list[tuple[str, list[tuple[str, dict[str, str]]]]], repo: RepoSpec
) -> tuple[bytes, dict[str, int]]:
    out = io.BytesIO()
    mark = 0
    tips: dict[str, int] = {}

    def data(b: bytes) -> None:
        out.write(b"data %d\n" % len(b) + b + b"\n")

    for ref, commits in branches:
        for j, (msg, snapshot) in enumerate(commits):
            mark += 1
            name, email = repo.authors[j % len(repo.authors)]
            when = _EPOCH + repo.index * 3 * 86400 + j * repo.hour_step * 3600
            out.write(f"commit {ref}\nmark :{mark}\n".encode())
            out.write(
                f"author {name} <{email}> {when} +0000\ncommitter {name} <{email}> {when} +0000\n".encode()
            )
            data(msg.encode() + b"\n")
            out.write(b"deleteall\n")
            for path in sorted(snapshot):
                out.write(f"M 100644 inline {path}\n".encode())
                data(snapshot[path].encode())
            out.write(b"\n")
        tips[ref] = mark
    return out.getvalue(), tips


def write_repo(repo: RepoSpec, dest: Path) -> dict[str, str]:
    """Create the bare repository with one branch per task; return {instance_id: base_commit}."""

    def branch(task: dict) -> str:
        return f"refs/heads/task/{task['number']}"

    branches = [(branch(t), t["history"]) for t in repo.tasks]
    stream, tips = _fast_import_stream(branches, repo)
    subprocess.run(["git", "init", "--quiet", "--bare", "--template=", str(dest)], check=True)
    marks = dest / "fast-import.marks"
    subprocess.run(
        [
            "git",
            "-C",
            str(dest),
            "-c",
            "fastimport.unpackLimit=0",
            "fast-import",
            "--quiet",
            f"--export-marks={marks}",
        ],
        input=stream,
        check=True,
        capture_output=True,
    )
    by_mark = dict(line.split() for line in marks.read_text().splitlines())
    marks.unlink()
    first = min(repo.tasks, key=lambda t: t["number"])
    subprocess.run(
        ["git", "-C", str(dest), "update-ref", "refs/heads/main", f"refs/heads/task/{first['number']}"],
        check=True,
    )
    subprocess.run(["git", "-C", str(dest), "symbolic-ref", "HEAD", "refs/heads/main"], check=True)
    return {t["instance_id"]: by_mark[f":{tips[branch(t)]}"] for t in repo.tasks}


# ---------------------------------------------------------------- the suite


def _plan_repos(rng: random.Random, n_repos: int) -> list[RepoSpec]:
    names = [f"{p}-{s}" for p in _PREFIXES for s in _SUFFIXES]
    picked = rng.sample(names, n_repos)
    theme_cycle: list[Theme] = []
    repos = []
    all_aliases = {s.key: s.aliases for t in THEMES for s in t.snippets}
    for i, name in enumerate(picked):
        k = rng.randint(3, 5)
        themes: list[Theme] = []
        while len(themes) < k:
            if not theme_cycle:
                theme_cycle = list(THEMES)
                rng.shuffle(theme_cycle)
            t = theme_cycle.pop()
            if t not in themes:
                themes.append(t)
        layout = rng.choice(("flat", "flat", "src", "nested"))
        package = name.replace("-", "_") if rng.random() < 0.5 else name.replace("-", "")
        modules = []
        for t in themes:
            sub = rng.choice(("core", "utils")) if layout == "nested" and rng.random() < 0.7 else ""
            aliases = {s.key: rng.choice(all_aliases[s.key]) for s in t.snippets}
            modules.append(Module(t, rng.choice(t.module_names), sub, aliases))
        authors = rng.sample(_AUTHORS, rng.randint(1, 3))
        version = f"{rng.randint(0, 2)}.{rng.randint(1, 12)}"
        repos.append(
            RepoSpec(i, name, package, layout == "src", version, modules, rng.randint(2, 30), authors)
        )
    return repos


def _assign(rng: random.Random, repos: list[RepoSpec], n: int) -> list[Site]:
    by_family: dict[str, list[Site]] = {f: [] for f in FAMILIES}
    for r in repos:
        for mi, m in enumerate(r.modules):
            for si, s in enumerate(m.theme.snippets):
                for bi, b in enumerate(s.bugs):
                    by_family[b.family].append(Site(r.index, mi, si, bi))
    for sites in by_family.values():
        rng.shuffle(sites)
    families = list(FAMILIES)
    rng.shuffle(families)
    load = [0] * len(repos)
    used_snippets: set[tuple[int, int, int]] = set()
    chosen: list[Site] = []
    i = 0
    while len(chosen) < n:
        if not any(by_family.values()):
            raise UserError(f"cannot make {n} distinct tasks from {len(repos)} repositories")
        fam = families[i % len(families)]
        i += 1
        if not by_family[fam]:
            continue
        best = min(
            range(len(by_family[fam])),
            key=lambda j: (
                load[by_family[fam][j].repo],
                (by_family[fam][j].repo, by_family[fam][j].module, by_family[fam][j].snippet)
                in used_snippets,
                j,
            ),
        )
        site = by_family[fam].pop(best)
        load[site.repo] += 1
        used_snippets.add((site.repo, site.module, site.snippet))
        chosen.append(site)
    return chosen


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output folder {out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "instances.jsonl").exists():
        raise UserError(f"output folder {out_dir} is not empty and holds no suite; refusing to overwrite it")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to output folder {out_dir}: {e.strerror or e}") from None


def build_suite(
    out_dir: str | Path, n: int = 60, seed: int = 0, on_progress: OnProgress | None = None
) -> Path:
    """Generate `n` tasks into `out_dir`; return the path of `instances.jsonl`. Same seed, same suite."""
    if not isinstance(n, int) or n < 1 or n > MAX_N:
        raise UserError(f"--n must be between 1 and {MAX_N} (got {n})")
    out_dir = Path(out_dir).absolute()  # git -C resolves relative paths from the repo
    _check_out_dir(out_dir)
    t0 = time.monotonic()
    rng = random.Random(seed)
    repos = _plan_repos(rng, max(4, math.ceil(n / TASKS_PER_REPO)))
    sites = _assign(rng, repos, n)
    for r in repos:
        numbers = iter(
            sorted(rng.sample(range(1, 40 * TASKS_PER_REPO), sum(1 for s in sites if s.repo == r.index)))
        )
        for site in (s for s in sites if s.repo == r.index):
            history, detail = repo_history(r, site)
            num = next(numbers)
            r.tasks.append(
                {
                    "number": num,
                    "instance_id": f"{OWNER}__{r.name}-{num}",
                    "history": history,
                    "detail": detail,
                }
            )
    used = [r for r in repos if r.tasks]
    n_test_repos = max(1, round(0.2 * len(used))) if len(used) > 1 else 0
    test_repos = sorted(r.full_name for r in rng.sample(used, n_test_repos))

    repos_dir = out_dir / "repos"
    if repos_dir.exists():
        shutil.rmtree(repos_dir)
    repos_dir.mkdir(parents=True)
    instances = []
    report = on_progress or (lambda *a: None)
    for k, r in enumerate(used, 1):
        bases = write_repo(r, repos_dir / f"{OWNER}__{r.name}.git")
        for t in sorted(r.tasks, key=lambda t: t["number"]):
            instances.append(_instance(r, t, bases[t["instance_id"]], test_repos, rng))
        report("writing repositories", k, len(used), "")
    instances.sort(key=lambda i: (i["repo"], int(i["instance_id"].rsplit("-", 1)[1])))
    path = out_dir / "instances.jsonl"
    write_jsonl(path, instances)
    splits = {
        "seed": seed,
        "n": n,
        "rule": "test = tasks of a held-out bug family or of a held-out repository; train = all others",
        "test_families": list(TEST_FAMILIES),
        "test_repos": test_repos,
        "train": [i["instance_id"] for i in instances if i["split"] == "train"],
        "test": [i["instance_id"] for i in instances if i["split"] == "test"],
    }
    atomic_write_json(out_dir / "splits.json", splits)
    log.info(
        "built %d tasks in %d repositories in %.1fs -> %s",
        len(instances),
        len(used),
        time.monotonic() - t0,
        path,
    )
    return path


def _instance(r: RepoSpec, task: dict, base: str, test_repos: list[str], rng: random.Random) -> dict:
    d = task["detail"]
    m: Module = d["module"]
    bug: Bug = d["bug"]
    issue = render_issue(
        rng, bug, d["alias"], m.import_path(r.package), r.package, r.version, d["buggy_src"], d["fixed_src"]
    )
    split = "test" if bug.family in TEST_FAMILIES or r.full_name in test_repos else "train"
    j = len(task["history"]) - 1
    created = _EPOCH + r.index * 3 * 86400 + j * r.hour_step * 3600 + 3600 * (1 + task["number"] % 48)
    return {
        "instance_id": task["instance_id"],
        "repo": r.full_name,
        "base_commit": base,
        "problem_statement": issue,
        "patch": d["patch"],
        "test_patch": d["test_patch"],
        "FAIL_TO_PASS": d["FAIL_TO_PASS"],
        "PASS_TO_PASS": d["PASS_TO_PASS"],
        "version": r.version,
        "environment_setup_commit": base,
        "hints_text": "",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
        "test_cmd": TEST_CMD.format(test_file=m.test_path),
        "family": bug.family,
        "split": split,
    }
