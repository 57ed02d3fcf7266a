"""localize()'s answers, recorded to compare two trees (a fast-path change must not move any
answer; not a test).

``record`` localizes the first ``--panoramas`` world VIGOR test panoramas (the cross-area
test cities), each with its heading given, searched on a copy turned by a seeded random
heading, and searched under a seeded random prior near the truth, at each ``--top-k``, and
writes every answer as JSON (an error as its message). ``compare`` counts the records two
such files share exactly, and lists the fields that differ (floats too: bit for bit).

The tree under test is the one imported, so run ``record`` from each checkout::

    python -m benchmarks.answers record --data data/vigor --out runs/answers_new.json
    (cd ../old && python -m benchmarks.answers record --data ../main/data/vigor \\
        --out /tmp/answers_old.json)
    python -m benchmarks.answers compare /tmp/answers_old.json runs/answers_new.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.bench_trust import vigor_test
from d4g_edge.build.calibration_rows import random_prior, turn_frame_by
from d4g_edge.errors import D4GEdgeError
from d4g_edge.image import load_rgb
from d4g_edge.localizer import Localizer


def record(loc: Localizer, data: Path, panoramas: int, top_ks=(5, 40), seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for path, truth in vigor_test(data)[:panoramas]:
        rgb = load_rgb(path)
        turned, _ = turn_frame_by(rgb, loc.view, rng)
        prior = random_prior(rng, *truth)
        asks = (("heading given", rgb, {"heading": 0.0}), ("heading searched", turned, {}))
        asks += (("prior", turned, {"prior": prior}),)
        for kind, image, kw in asks:
            for k in top_ks:
                try:
                    answer = loc.localize(image, top_k=k, **kw).to_dict()
                except D4GEdgeError as err:
                    answer = {"error": str(err)}
                out.append({"image": path.name, "kind": kind, "top_k": k, "answer": answer})
    return out


def differences(a, b, path: str = "") -> list[str]:
    """Where two JSON values differ, as ``path: a != b`` lines (exact, floats included)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b)) for d in _at(a, b, key, path)]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)}"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b and type(a) is type(b) else [f"{path}: {a!r} != {b!r}"]


def _at(a: dict, b: dict, key: str, path: str) -> list[str]:
    missing = object()
    x, y = a.get(key, missing), b.get(key, missing)
    if x is missing or y is missing:
        return [f"{path}.{key}: only in {'the second' if x is missing else 'the first'}"]
    return differences(x, y, f"{path}.{key}")


def compare(a: list, b: list) -> dict:
    if len(a) != len(b):
        return {"records": [len(a), len(b)], "identical": 0, "differ": None}
    diffs = [differences(x, y) for x, y in zip(a, b, strict=True)]
    examples = [
        f"{x['image']} {x['kind']} top_k={x['top_k']}: {d[0]}"
        for x, d in zip(a, diffs, strict=True)
        if d
    ]
    return {
        "records": len(a),
        "errors": sum("error" in x["answer"] for x in a),
        "identical": sum(not d for d in diffs),
        "differ": len(examples),
        "first_differences": examples[:10],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.answers", description=__doc__)
    sub = p.add_subparsers(dest="what", required=True)
    rec = sub.add_parser("record", help="localize the test panoramas, write the answers")
    rec.add_argument("--data", type=Path, required=True, help="the world's VIGOR layout")
    rec.add_argument("--bundle", type=Path, default=None, help="default: the bundled default")
    rec.add_argument("--panoramas", type=int, default=100)
    rec.add_argument("--top-k", type=int, nargs="+", default=[5, 40])
    rec.add_argument("--out", type=Path, required=True)
    cmp = sub.add_parser("compare", help="how many answers of two records files are identical")
    cmp.add_argument("a", type=Path)
    cmp.add_argument("b", type=Path)
    args = p.parse_args(argv)
    if args.what == "record":
        recs = record(Localizer(args.bundle, threads=1), args.data, args.panoramas, args.top_k)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(recs))
        print(f"{len(recs)} answers -> {args.out}")
        return 0
    report = compare(json.loads(args.a.read_text()), json.loads(args.b.read_text()))
    print(json.dumps(report, indent=1))
    return 0 if report["differ"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
