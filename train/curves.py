"""Training curves of runs continued from one another (``--init``), on one epoch axis.

A recipe is often several runs, each starting from the last one's weights with a new
schedule (the VIGOR teacher: 4 + 3 + 3 epochs). Each run folder's ``metrics.jsonl`` counts
its own epochs from 1; this joins a chain of them so the second run's epoch 1 follows the
first run's last epoch, and draws validation R@1 / hit rate and the training loss of
several chains side by side (a teacher and its students).

Usage::

    python -m train.curves --chain "teacher=runs/t1,runs/t2,runs/t3" \\
        --chain "students=runs/students" --point "teacher, 5 x 5 centres=10,50.5" \\
        --target 60 --out docs/offcentre_curves.png
"""

from __future__ import annotations

import argparse
from itertools import pairwise
from pathlib import Path

from train.loop.runlog import RunLog


def chain_records(runs: list[Path]) -> list[dict]:
    """The runs' records, each run's epochs shifted past the previous runs' last epoch."""
    out: list[dict] = []
    offset = 0
    for run in runs:
        log = RunLog(run)
        records = log.records()
        if not records:
            raise ValueError(f"{run} has no {log.path.name}: not a training run folder")
        for r in records:
            out.append({**r, "epoch": r["epoch"] + offset, "run": str(run)})
        offset += max(r["epoch"] for r in records)
    return out


def parse_chain(text: str) -> tuple[str, list[Path]]:
    name, sep, runs = text.partition("=")
    if not sep or not name or not runs:
        raise argparse.ArgumentTypeError(f"expected NAME=RUN[,RUN...], got {text!r}")
    return name, [Path(r) for r in runs.split(",") if r]


def parse_point(text: str) -> tuple[str, float, float]:
    label, sep, xy = text.partition("=")
    try:
        x, y = (float(v) for v in xy.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LABEL=EPOCH,R1, got {text!r}") from None
    if not sep or not label:
        raise argparse.ArgumentTypeError(f"expected LABEL=EPOCH,R1, got {text!r}")
    return label, x, y


def plot(
    chains: dict[str, list[dict]],
    out: Path,
    target: float | None = None,
    points: list[tuple[str, float, float]] = (),
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for k, (name, recs) in enumerate(chains.items()):
        colour = f"C{k}"
        pts = [(r["epoch"], r["recall@1"]) for r in recs if "recall@1" in r]
        if pts:
            ax_r.plot(*zip(*pts, strict=True), marker="o", color=colour, label=f"{name} R@1")
        hits = [(r["epoch"], r["hit_rate"]) for r in recs if "hit_rate" in r]
        if hits:
            ax_r.plot(*zip(*hits, strict=True), ls="--", color=colour, label=f"{name} hit rate")
        ax_loss.plot(
            [r["epoch"] for r in recs], [r["loss"] for r in recs], marker=".", color=colour,
            label=name,
        )  # fmt: skip
        # where a continued run starts (a new learning-rate schedule)
        for prev, r in pairwise(recs):
            if r["run"] != prev["run"]:
                ax_r.axvline(prev["epoch"], color=colour, lw=0.6, alpha=0.3)
    for k, (label, x, y) in enumerate(points):
        ax_r.plot([x], [y], marker="*", ms=12, ls="none", color=f"C{len(chains) + k}", label=label)
    if target is not None:
        ax_r.axhline(target, color="grey", ls=":", label=f"target {target:g} %")
    ax_r.set(xlabel="epoch (runs chained)", ylabel="%", title="validation (held-out cities)")
    ax_r.legend(fontsize=8)
    ax_loss.set(xlabel="epoch (runs chained)", ylabel="training loss", title="loss", yscale="log")
    ax_loss.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m train.curves", description=__doc__.split("Usage")[0]
    )
    p.add_argument(
        "--chain",
        type=parse_chain,
        action="append",
        required=True,
        help="NAME=RUN[,RUN...]: run folders, each continued from the previous (--init)",
    )
    p.add_argument(
        "--point",
        type=parse_point,
        action="append",
        default=[],
        help="LABEL=EPOCH,R1: one more measurement (e.g. another evaluation of a run)",
    )
    p.add_argument("--target", type=float, default=None, help="draw a target R@1 line (%%)")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = p.parse_args(argv)
    try:
        chains = {name: chain_records(runs) for name, runs in args.chain}
    except ValueError as err:
        p.error(str(err))
    print(f"wrote {plot(chains, args.out, args.target, args.point)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
