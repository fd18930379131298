"""Throughput of `srl_reward` vs the same reward on plain `difflib`, on a realistic GRPO mix.

Expert actions are the calls of the real SWE-smith trajectories in shared/data/real (short bash
calls and views, long file edits and creates); for each, G=8 policy completions: some exact, most
near misses (character edits), some another step's action, some format failures. Both paths parse
identically; values must be identical. Prints a table, writes bench/results/reward.json.

    python bench/reward.py [--groups 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import difflib
import json
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=300)
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
    out = ROOT / "bench" / "results" / "reward.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"groups": args.groups, "g": args.g, "results": results}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
