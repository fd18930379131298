"""One decode step of the shipped tiny checkpoint: the model's transformers forward against the lean
step (swesrl/training/decode_step.py), side by side on the same KV cache shapes.

For each batch size, rows of ~`--context` prompt tokens (different lengths, so left-padded) are
prefilled by the backend, then `--steps` decode steps run through each path in turn, alternating,
`--repeats` times; the table gives the median milliseconds per step of each path and their ratio.
One intra-op thread, as the rollout decodes on CPU.

    python bench/decode_step.py [--rows 1 3 6] [--context 700] [--steps 100] [--repeats 5]

Prints a table; writes bench/results/decode_step.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TINY = ROOT / "swesrl" / "checkpoints" / "tiny-demo"
RESULTS = ROOT / "bench" / "results" / "decode_step.json"


def time_path(model, backend, prompts, steps: int, lean: bool) -> float:
    """Milliseconds per decode step after prefilling `prompts` (a fresh cache each time)."""
    import torch

    cache, attn, pos, logits = backend._prefill(prompts)
    token = logits.argmax(-1)
    b = len(prompts)
    t0 = time.perf_counter()
    for _ in range(steps):
        attn = torch.cat([attn, attn.new_ones(b, 1)], 1)
        if lean:
            logits = backend.lean.step(token[:, None], attn, pos, cache)[:, -1]
        else:
            logits = model(
                input_ids=token[:, None], attention_mask=attn, position_ids=pos, cache=cache
            ).logits[:, -1]
        token, pos = logits.argmax(-1), pos + 1
    return 1000 * (time.perf_counter() - t0) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[1, 3, 6])
    p.add_argument("--context", type=int, default=700, help="prompt tokens of the first row")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    import torch
    from rich.console import Console
    from rich.table import Table

    from swesrl.training.generation import HFBackend
    from swesrl.training.srl import ModelConfig, load_policy

    torch.set_num_threads(1)
    model, tok = load_policy(ModelConfig(path=str(TINY)))
    backend = HFBackend(model, tok, args.steps + 8, prefix_cache_tokens=0)
    if backend.lean is None:
        raise SystemExit("the lean step does not accept the tiny checkpoint")
    g = torch.Generator().manual_seed(0)
    rows = []
    with torch.inference_mode():
        for b in args.rows:
            prompts = [
                torch.randint(3, 1000, (args.context + 37 * i,), generator=g).tolist() for i in range(b)
            ]
            time_path(model, backend, prompts, 10, False)  # warm both paths
            time_path(model, backend, prompts, 10, True)
            ms = {"forward": [], "lean": []}
            for _ in range(args.repeats):
                ms["forward"].append(time_path(model, backend, prompts, args.steps, False))
                ms["lean"].append(time_path(model, backend, prompts, args.steps, True))
            f, n = statistics.median(ms["forward"]), statistics.median(ms["lean"])
            rows.append({"rows": b, "forward_ms": f, "lean_ms": n, "speedup": f / n, "runs": ms})
    result = {
        "date": datetime.date.today().isoformat(),
        "command": "python bench/decode_step.py " + " ".join(sys.argv[1:]),
        "setup": {
            "model": "swesrl/checkpoints/tiny-demo",
            "context": args.context,
            "steps": args.steps,
            "repeats": args.repeats,
            "threads": 1,
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "results": rows,
    }
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title=f"one decode step, tiny checkpoint, ~{args.context}-token contexts, 1 thread")
    for col in ("rows", "transformers forward ms", "lean step ms", "speedup"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["rows"]), f"{r['forward_ms']:.2f}", f"{r['lean_ms']:.2f}", f"{r['speedup']:.2f}x")
    Console().print(table)
    Console().print(f"-> {out}")


if __name__ == "__main__":
    main()
