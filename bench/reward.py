"""Throughput of `srl_reward` vs the same reward on plain `difflib`, on a realistic GRPO mix.

Expert actions are the calls of the real SWE-smith trajectories in shared/data/real (short bash
calls and views, long file edits and creates); for each, G=8 policy completions: some exact, most
near misses (character edits), some another step's action, some format failures. Both paths parse
identically; values must be identical. Prints a table, writes bench/results/reward.json.

`--execution` adds the execution reward (`reward.compare: execution`) on a real bundled task suite
in local sandboxes, G=8 completions per group, every group a fresh step (effect caches cleared, so
the expert's action runs too; states come as the rows' `state` column, as TRL passes them):
`bash reads` (8 distinct read commands: grep twice, cat, sed -n, head, awk, ls, a Python one-liner;
none the expert's call), `edits` (8 distinct str_replace edits of the buggy file, each a real
change), `edits, new state` (the same, but every group on another state, as in training where
each row is another step: the sandboxes restore it first), and `mixed G=8` (as a near-converged
policy samples: 3 exact calls, 3 copies of one equivalent command, 2 distinct reads). Timed after
a warm-up group per task (sandboxes warm), with `--workers` threads.

    python bench/reward.py [--groups 300] [--repeat 3] [--execution] [--exec-groups 24] [--workers 2]
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import random
import re
import statistics
import time
from pathlib import Path

from swesrl.core.actions import split_thought
from swesrl.training.rewards import FORMAT_FAILURE, extract_action, srl_reward

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "tests" / "data" / "real" / "swesmith_ft_xml_example.jsonl"


def reference_reward(completions: list[str], experts: list[str]) -> list[float]:
    """The paper's reward written plainly: parse, then difflib per pair."""
    out = []
    for c, e in zip(completions, experts, strict=True):
        a = extract_action(c)
        out.append(FORMAT_FAILURE if a is None else difflib.SequenceMatcher(None, a, e.strip()).ratio())
    return out


def expert_actions() -> list[str]:
    acts = []
    if REAL.is_file():
        for line in REAL.read_text(encoding="utf-8").splitlines():
            for m in json.loads(line)["messages"]:
                if m["role"] == "assistant":
                    _, call = split_thought(m["content"] if isinstance(m["content"], str) else "")
                    if call.rstrip().endswith("</function>"):
                        acts.append(call.strip())
    if not acts:  # synthetic fallback
        code = "".join(f"    value_{i} = compute(items[{i}], scale={i % 5})\n" for i in range(60))
        acts = [
            f"<function=bash>\n<parameter=command>ls -la src/{i}</parameter>\n</function>" for i in range(20)
        ]
        acts += [
            "<function=str_replace_editor>\n<parameter=command>str_replace</parameter>\n<parameter=path>/testbed/m.py"
            f"</parameter>\n<parameter=old_str>{code[i:]}</parameter>\n<parameter=new_str>{code[: -i - 1]}"
            "</parameter>\n</function>"
            for i in range(10)
        ]
    return acts


def mutate(s: str, rng: random.Random) -> str:
    """Near miss: character edits inside the parameter values (the XML stays well formed)."""
    return re.sub(
        r"(<parameter=[^>]*>)(.*?)(</parameter>)",
        lambda m: m.group(1) + (mutate_text(m.group(2), rng) if m.group(2) else "") + m.group(3),
        s,
        flags=re.DOTALL,
    )


def mutate_text(s: str, rng: random.Random) -> str:
    chars = list(s)
    for _ in range(max(1, len(chars) // 40)):
        j = rng.randrange(len(chars))
        op = rng.random()
        if op < 0.4:
            chars[j] = rng.choice("abcdefxyz _./\n")
        elif op < 0.7:
            del chars[j]
        else:
            chars.insert(j, rng.choice("abcdefxyz _./\n"))
    return "".join(chars)


def make_groups(n_groups: int, g: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    acts = expert_actions()
    completions, experts = [], []
    for _ in range(n_groups):
        e = rng.choice(acts)
        for _ in range(g):
            u = rng.random()
            if u < 0.15:
                body = e
            elif u < 0.75:
                body = mutate(e, rng)
            elif u < 0.9:
                body = rng.choice(acts)
            else:
                body = "I think the fix is in utils.py"  # format failure
            completions.append(f"<think>reasoning about the step</think>\n{body}")
            experts.append(e)
    return completions, experts


def timeit(fn, *args, repeat: int) -> tuple[float, list[float]]:
    best, out = float("inf"), []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t)
    return best, out


def hunk_sides(patch: str) -> tuple[str, str]:
    """The old and new text of a patch's first hunk (context included): a str_replace that applies it."""
    body = patch.split("\n@@", 1)[1].split("\n", 1)[1].split("\n@@", 1)[0].split("\ndiff --git", 1)[0]
    old, new = [], []
    for ln in body.splitlines():
        if ln.startswith(("-", " ")) or ln == "":
            old.append(ln[1:])
        if ln.startswith(("+", " ")) or ln == "":
            new.append(ln[1:])
    return "\n".join(old), "\n".join(new)


def execution_groups(suite: Path, n_groups: int, g: int, kind: str, seed: int):
    """(instance, expert action, g completions) per group, on the tasks of a bundled suite."""
    import shlex
    import subprocess

    from swesrl.core.actions import format_action
    from swesrl.core.instances import default_mirror, load_instances

    rng = random.Random(seed)
    insts = [dict(i) for i in load_instances(suite)]
    files = {}
    for inst in insts:
        src = default_mirror(suite) / f"{inst['repo'].replace('/', '__')}.git"
        rel = re.search(r"^--- a/(\S+)", inst["patch"], re.M).group(1)
        text = subprocess.run(["git", "--git-dir", str(src), "show", f"{inst['base_commit']}:{rel}"],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip
        files[inst["instance_id"]] = (rel, text)
    groups = []
    for k in range(n_groups):
        inst = insts[k % len(insts)]
        rel, text = files[inst["instance_id"]]
        path = f"/testbed/{rel}"
        names = sorted(set(re.findall(r"def (\w+)\(", text))) or ["def"]
        lines = [ln for ln in text.splitlines() if ln.strip() and text.count(ln) == 1]
        old, new = hunk_sides(inst["patch"])
        if kind == "edits":
            expert = format_action("str_replace_editor", {"command": "str_replace", "path": path, "old_str": old,
                                                          "new_str": new})  # fmt: skip
            picked = rng.sample(lines, min(g, len(lines)))
            comps = [format_action("str_replace_editor", {"command": "str_replace", "path": path, "old_str": ln,
                                                         "new_str": ln + f"  # {k}-{i}"})  # fmt: skip
                     for i, ln in enumerate(picked)]  # fmt: skip
        else:
            name = rng.choice(names)
            expert = format_action("bash", {"command": f"grep -rn {name} ."})
            reads = [
                f"grep -n {name} -r .",
                f"grep -rn 'def {name}' /testbed",
                f"cat -n {path}",
                f"sed -n '{rng.randint(1, 20)},{rng.randint(21, 60)}p' {path}",
                f"head -n {rng.randint(5, 40)} {path}",
                f"awk 'NR <= {k + 5}' {path}",
                f"ls -la {shlex.quote(str(Path(path).parent))}",
                f"python3 -c 'print({k} + {rng.randint(0, 99)})'",
            ]
            if kind == "bash reads":
                comps = [format_action("bash", {"command": c}) for c in reads[:g]]
            else:  # a near-converged policy: exact calls, repeats of one equivalent command, a few others
                same = format_action("bash", {"command": reads[0]})
                comps = (
                    [expert] * 3 + [same] * 3 + [format_action("bash", {"command": c}) for c in reads[2:4]]
                )
        groups.append((inst, expert, [f"<think>step</think>\n{c}" for c in comps]))
    return groups


def notes_patch(k: int) -> str:
    """A state: the expert's earlier steps added a notes file (another one per k)."""
    return (
        "diff --git a/NOTES.txt b/NOTES.txt\nnew file mode 100644\n--- /dev/null\n+++ b/NOTES.txt\n"
        f"@@ -0,0 +1 @@\n+step {k}\n"
    )


def bench_execution(args) -> dict:
    import tempfile

    from swesrl.tasks import build_suite
    from swesrl.training.exec_reward import ExecutionConfig, ExecutionScorer

    out = {}
    with tempfile.TemporaryDirectory(prefix="swesrl-bench-reward-") as tmp:
        suite = build_suite(Path(tmp) / "suite", n=4, seed=0)
        for kind in ("bash reads", "edits", "edits, new state", "mixed G=8"):
            groups = execution_groups(suite, args.exec_groups, args.g, kind.split(",")[0], args.seed)
            insts = {inst["instance_id"]: inst for inst, _, _ in groups}
            cfg = ExecutionConfig(instances=str(suite), workers=args.workers, max_sandboxes=2 * len(insts))
            with ExecutionScorer(cfg, instances=insts) as scorer:

                def score(group, k=0, kind=kind):
                    inst, expert, comps = group
                    n = len(comps)
                    scorer.policy_cache.clear()
                    scorer.expert_cache.clear()
                    # the rows' `state` column, as TRL passes it; `new state`: another state every group
                    patch = notes_patch(k) if kind == "edits, new state" else ""
                    state = [{"patch": patch, "final_patch": inst["patch"]}] * n
                    return scorer(comps, [expert] * n, instance_id=[inst["instance_id"]] * n, state=state)

                warm = {}
                for grp in groups:  # one untimed group per task: the pool's sandboxes start
                    warm.setdefault(grp[0]["instance_id"], grp)
                for grp in warm.values():
                    score(grp)
                t = time.perf_counter()
                executed = 0
                rewards = []
                for k, grp in enumerate(groups, 1):
                    rewards += score(grp, k)
                    executed += scorer.last.executed
                dt = time.perf_counter() - t
            n = sum(len(c) for _, _, c in groups)
            out[kind] = {
                "groups": len(groups),
                "completions": n,
                "actions_executed": executed,
                "seconds": dt,
                "completions_per_s": n / dt,
                "mean_reward": sum(rewards) / len(rewards),
                "workers": args.workers,
                "sandboxes_opened": scorer.pool.opened,
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=300)
    ap.add_argument("--execution", action="store_true", help="Also time the execution reward (sandboxes).")
    ap.add_argument("--exec-groups", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--g", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    completions, experts = make_groups(args.groups, args.g, args.seed)
    results = {}
    lengths = [len(e) for e in experts]
    short = [i for i, e in enumerate(experts) if len(e) < 300]
    long = [i for i, e in enumerate(experts) if len(e) >= 300]
    print(
        f"{len(completions)} completions; expert length median {statistics.median(lengths):.0f}, "
        f"max {max(lengths)}; {len(short)} short (<300 chars), {len(long)} long"
    )
    rows = []
    for name, idx in (("all", list(range(len(experts)))), ("short calls", short), ("long edits", long)):
        c = [completions[i] for i in idx]
        e = [experts[i] for i in idx]
        t_ref, v_ref = timeit(reference_reward, c, e, repeat=args.repeat)
        t_new, v_new = timeit(srl_reward, c, e, repeat=args.repeat)
        assert v_ref == v_new, f"{name}: values differ"
        rows.append((name, len(c), len(c) / t_ref, len(c) / t_new, t_ref / t_new))
        results[name] = {
            "completions": len(c),
            "difflib_per_s": len(c) / t_ref,
            "srl_reward_per_s": len(c) / t_new,
            "speedup": t_ref / t_new,
            "identical": True,
        }
    print(f"\n{'mix':<12} {'n':>6} {'difflib /s':>12} {'srl_reward /s':>14} {'speedup':>8}  identical")
    for name, n, a, b, s in rows:
        print(f"{name:<12} {n:>6} {a:>12.0f} {b:>14.0f} {s:>7.1f}x  yes")
    report = {"groups": args.groups, "g": args.g, "results": results}
    if args.execution:
        ex = bench_execution(args)
        targets = {"bash reads": 200, "edits": 50}
        print(
            f"\nexecution reward, G={args.g}, {args.workers} workers (local sandboxes, fresh step per group)"
        )
        print(f"{'mix':<17} {'groups':>6} {'executed':>9} {'completions/s':>14} {'target':>7}")
        for kind, r in ex.items():
            tgt = targets.get(kind)
            print(f"{kind:<17} {r['groups']:>6} {r['actions_executed']:>9} {r['completions_per_s']:>14.1f} "
                  f"{'>= ' + str(tgt) if tgt else '-':>7}")  # fmt: skip
        report["execution"] = ex
        report["load_average"] = os.getloadavg()
    out = ROOT / "bench" / "results" / "reward.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
