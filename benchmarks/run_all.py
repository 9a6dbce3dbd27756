"""Every benchmark in one table: segment, pack, train, sample, the model step and the ops, each row against the
baseline it names (a base revision with --baseline, or the reference-style way measured in the
same run).

    python benchmarks/run_all.py [--baseline REV] [--quick] [--threads N] [--device cpu|cuda] [--json all.json]

Each script runs as its own process with `--json`; their rows are printed together at the end.
--quick runs small sizes (minutes on 2 CPU cores); without it the defaults of each script.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import harness

HERE = Path(__file__).resolve().parent


def commands(args) -> dict[str, list[str]]:
    """The benchmark invocations, by name."""
    tree = ["--processes", str(args.processes), "--threads", str(args.threads), "--device", args.device]
    if args.baseline:
        tree += ["--baseline", args.baseline]
    quick = args.quick
    return {
        "segment": ["segment.py", *(["--images", "120", "--repeat", "1", "--synthetic", "200"] if quick else [])],
        "pack": ["pack.py", *(["--sizes", "500", "--repeat", "1"] if quick else [])],
        "train": ["train.py", *tree, *(["--steps", "4", "--warmup", "2"] if quick else [])],
        "sample": ["sample.py", *tree, *(["--n", "32"] if quick else [])],
        "model": ["model.py", *tree, *(["--steps", "3"] if quick else [])],
        "ops": ["ops.py", "--device", args.device, *(["--repeat", "10"] if quick else [])],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", metavar="REV", help="the revision train and sample are compared with")
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="comma-separated subset of: segment,pack,train,sample,model,ops")
    parser.add_argument("--json", dest="json_out", type=Path)
    args = parser.parse_args()
    chosen = commands(args)
    if args.only:
        chosen = {name: chosen[name] for name in args.only.split(",")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (script, *options) in chosen.items():
            out = Path(tmp) / f"{name}.json"
            print(f"== {name}: {script} {' '.join(options)}", flush=True)
            subprocess.run([sys.executable, str(HERE / script), *options, "--json", str(out)], check=True)
            rows += [harness.Row.from_record(record) for record in json.loads(out.read_text())]
    print()
    harness.report(rows, args.json_out)


if __name__ == "__main__":
    main()
