"""Dump swebench 4.1's per-version specs and the eval scripts its own builder makes from them.

swebench 5 (the version the project pins) dropped `MAP_REPO_VERSION_TO_SPECS`, the table from which
swebench 4.1 builds the official evaluation script of a classic instance (only the SWE-bench dataset
fields). This script is the source of truth for the project's copy of that table. It runs in a side
virtual environment that has swebench 4.1.0, never in the project's own:

    python3 -m venv /tmp/sb41 && /tmp/sb41/bin/pip install swebench==4.1.0
    /tmp/sb41/bin/python scripts/gen_swebench_specs.py

It writes

- `swesrl/harness/data/swebench41_specs.json` (shipped in the package): every repository and
  version of `MAP_REPO_VERSION_TO_SPECS` (SWE-bench full / Lite / Verified, Multimodal (JS) and
  Multilingual), each repository's language (`MAP_REPO_TO_EXT`), `NON_TEST_EXTS`, and the keys for
  which swebench 4.1 cannot build an eval script at all (with its error);
- `tests/harness/data/swebench41_eval_scripts.json.gz` (a test fixture): for every key and every
  synthetic instance in `CASES`, the eval script `make_test_spec(instance).eval_script` returns
  (env name "testbed", repository at "/testbed"), so `tests/harness/test_official.py` checks the
  project's builder (`swesrl/harness/official.py`) line for line without swebench 4.1 installed.

No network is needed: `make_test_spec` fetches requirements files from GitHub only for the
*environment* script, which this script stubs out (it is not part of the eval script); the eval
script is also built with `make_eval_script_list` directly and both must agree. Outputs are
deterministic (gzip mtime 0), so a rerun gives identical bytes.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import io
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS_OUT = ROOT / "swesrl/harness/data/swebench41_specs.json"
SCRIPTS_OUT = ROOT / "tests/harness/data/swebench41_eval_scripts.json.gz"

BASE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
INSTANCE_ID = "swesrl__synthetic-1"

# One test patch touching every kind of path the builders treat differently: a modified test file,
# a new one in a sub-folder (django module names), a deleted one, a data file (NON_TEST_EXTS), and
# wp-calypso's client/, packages/ (with a Jest snapshot) and test/e2e trees.
MAIN_TEST_PATCH = """\
diff --git a/tests/test_swesrl.py b/tests/test_swesrl.py
--- a/tests/test_swesrl.py
+++ b/tests/test_swesrl.py
@@ -1,2 +1,5 @@
 def test_old():
     pass
+
+def test_new():
+    assert 1 + 1 == 2
diff --git a/tests/forms_tests/test_added.py b/tests/forms_tests/test_added.py
new file mode 100644
--- /dev/null
+++ b/tests/forms_tests/test_added.py
@@ -0,0 +1,2 @@
+def test_added():
+    pass
diff --git a/tests/test_removed.py b/tests/test_removed.py
deleted file mode 100644
--- a/tests/test_removed.py
+++ /dev/null
@@ -1,2 +0,0 @@
-def test_removed():
-    pass
diff --git a/tests/data/fixture.json b/tests/data/fixture.json
--- a/tests/data/fixture.json
+++ b/tests/data/fixture.json
@@ -1 +1 @@
-{}
+{"a": 1}
diff --git a/client/components/button/test/index.js b/client/components/button/test/index.js
--- a/client/components/button/test/index.js
+++ b/client/components/button/test/index.js
@@ -1 +1,2 @@
 it('renders', () => {});
+it('clicks', () => {});
diff --git a/packages/ui/test/__snapshots__/index.js.snap b/packages/ui/test/__snapshots__/index.js.snap
--- a/packages/ui/test/__snapshots__/index.js.snap
+++ b/packages/ui/test/__snapshots__/index.js.snap
@@ -1 +1 @@
-exports[`a 1`] = `1`;
+exports[`a 1`] = `2`;
diff --git a/test/e2e/specs/login.js b/test/e2e/specs/login.js
new file mode 100644
--- /dev/null
+++ b/test/e2e/specs/login.js
@@ -0,0 +1 @@
+it('logs in', () => {});
"""

# Only a new file: nothing to reset (swebench 4.1's Python builder then writes `git checkout <base> `,
# the common one `echo "No test files to reset"`).
NEW_ONLY_TEST_PATCH = """\
diff --git a/tests/test_fresh.py b/tests/test_fresh.py
new file mode 100644
--- /dev/null
+++ b/tests/test_fresh.py
@@ -0,0 +1,2 @@
+def test_fresh():
+    assert True
"""

IMAGE_ASSETS = {
    "problem_statement": [],
    "test_patch": [{"path": "test/fixtures/shot.png", "url": "https://example.com/shot.png"}],
}

CASES = {
    "main": {"test_patch": MAIN_TEST_PATCH, "image_assets": IMAGE_ASSETS},
    "new_only": {"test_patch": NEW_ONLY_TEST_PATCH, "image_assets": json.dumps(IMAGE_ASSETS)},
}
"""Synthetic instances (the fields that differ); `instance(...)` adds the rest."""


def instance(repo: str, version: str, case: str) -> dict:
    return {
        "instance_id": INSTANCE_ID,
        "repo": repo,
        "version": version,
        "base_commit": BASE_COMMIT,
        "environment_setup_commit": BASE_COMMIT,
        "problem_statement": "synthetic",
        "hints_text": "",
        "created_at": "2024-01-01T00:00:00Z",
        "patch": "",
        "FAIL_TO_PASS": json.dumps(["tests/test_swesrl.py::test_new"]),
        "PASS_TO_PASS": json.dumps(["tests/test_swesrl.py::test_old"]),
        **copy.deepcopy(CASES[case]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--specs-out", type=Path, default=SPECS_OUT)
    ap.add_argument("--scripts-out", type=Path, default=SCRIPTS_OUT)
    args = ap.parse_args()

    import swebench
    from swebench.harness.constants import MAP_REPO_TO_EXT, MAP_REPO_VERSION_TO_SPECS, NON_TEST_EXTS
    from swebench.harness.test_spec import test_spec as ts
    from swebench.harness.test_spec.create_scripts import make_eval_script_list

    if swebench.__version__ != "4.1.0":
        raise SystemExit(f"needs swebench 4.1.0, found {swebench.__version__} ({swebench.__file__})")
    # make_test_spec also builds the environment script, which downloads requirements files from
    # GitHub; it is not part of the eval script, so it is stubbed out (no network needed).
    ts.make_env_script_list = lambda instance, specs, env_name: []

    scripts: dict[str, dict[str, dict[str, str]]] = {}
    no_eval_script: dict[str, dict[str, str]] = {}
    for repo, versions in MAP_REPO_VERSION_TO_SPECS.items():
        for version, specs in versions.items():
            for case in CASES:
                inst = instance(repo, version, case)
                try:
                    spec = ts.make_test_spec(copy.deepcopy(inst))
                except Exception as e:  # noqa: BLE001 - recorded: the project's builder must fail too
                    no_eval_script.setdefault(repo, {})[version] = f"{type(e).__name__}: {e}"
                    continue
                direct = make_eval_script_list(
                    inst, specs, "testbed", "/testbed", BASE_COMMIT, inst["test_patch"]
                )
                script = "\n".join(["#!/bin/bash", "set -uxo pipefail", *direct]) + "\n"
                if spec.eval_script != script:
                    raise SystemExit(
                        f"{repo} {version} {case}: make_test_spec and make_eval_script_list differ"
                    )
                scripts.setdefault(case, {}).setdefault(repo, {})[version] = script

    data = {
        "source": f"swebench {swebench.__version__}: swebench.harness.constants.MAP_REPO_VERSION_TO_SPECS",
        "generated_by": "scripts/gen_swebench_specs.py",
        "non_test_exts": list(NON_TEST_EXTS),
        "languages": {repo: MAP_REPO_TO_EXT[repo] for repo in MAP_REPO_VERSION_TO_SPECS},
        "no_eval_script": no_eval_script,
        "specs": MAP_REPO_VERSION_TO_SPECS,
    }
    args.specs_out.parent.mkdir(parents=True, exist_ok=True)
    args.specs_out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    fixture = {
        "source": f"swebench {swebench.__version__}: make_test_spec(instance).eval_script",
        "generated_by": "scripts/gen_swebench_specs.py",
        "instances": {case: instance("<repo>", "<version>", case) for case in CASES},
        "scripts": scripts,
    }
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write((json.dumps(fixture, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    args.scripts_out.parent.mkdir(parents=True, exist_ok=True)
    args.scripts_out.write_bytes(buf.getvalue())

    n = sum(len(v) for v in MAP_REPO_VERSION_TO_SPECS.values())
    n_bad = sum(len(v) for v in no_eval_script.values())
    print(
        f"{len(MAP_REPO_VERSION_TO_SPECS)} repositories, {n} (repo, version) keys, {n - n_bad} with eval scripts"
    )
    for repo, versions in MAP_REPO_VERSION_TO_SPECS.items():
        bad = len(no_eval_script.get(repo, {}))
        print(
            f"  {MAP_REPO_TO_EXT[repo]:4} {repo:32} {len(versions):3}" + (f"  ({bad} without)" if bad else "")
        )
    print(f"wrote {args.specs_out} and {args.scripts_out}")


if __name__ == "__main__":
    main()
