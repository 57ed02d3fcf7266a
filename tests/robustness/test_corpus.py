"""Every broken variant of the corpus through ``train.datasets.load`` and ``train.evaluate``.

The README's promise, checked on a few hundred damaged datasets: no traceback, ever; each
variant either fails with a typed error whose message names a file of the dataset (exit 2),
or gives a correct result (``same``: exactly the undamaged dataset's split and metrics).
"""

from __future__ import annotations

import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from train.datasets import load

from .conftest import LAYOUTS, evaluate_in_process
from .corpus import KINDS, variants

TYPED = (ValueError, FileNotFoundError)


def _load(layout: str, root: Path):
    return load(layout, root, "test", **({"mode": "cross"} if layout == "vigor" else {}))


def _same_split(a, b) -> bool:
    rel = lambda paths, root: [str(Path(p).relative_to(root)) for p in paths]  # noqa: E731
    return (
        rel(a.query_paths, a.root) == rel(b.query_paths, b.root)
        and rel(a.reference_paths, a.root) == rel(b.reference_paths, b.root)
        and np.array_equal(a.query_ids, b.query_ids)
        and np.array_equal(a.reference_ids, b.reference_ids)
        and all(
            (x is None and y is None) or np.array_equal(x, y)
            for x, y in (
                (a.query_latlon, b.query_latlon),
                (a.reference_latlon, b.reference_latlon),
                (a.semi_positive_ids, b.semi_positive_ids),
            )
        )
    )


def _check(variant, root: Path, base_split, base_metrics, ckpt: Path, out_json: Path) -> str:
    """'' when the variant was handled as expected, else what went wrong."""
    try:
        split, load_error = _load(variant.layout, root), None
    except TYPED as err:
        split, load_error = None, err
    except Exception as err:  # any other type is the bug being tested for
        return f"load raised untyped {type(err).__name__}: {err}"
    code, stderr, message, record = evaluate_in_process(variant.layout, root, ckpt, out_json)
    if "Traceback" in stderr:
        return f"traceback on stderr: {stderr[-500:]}"
    if variant.expect == "error":
        if code != 2 or not message:
            return f"expected a typed error (exit 2), got exit {code}: {stderr[-300:]}"
        if str(root) not in message:
            return f"the message names no file of the dataset: {message[:300]}"
        return ""
    if load_error is not None:
        return f"load failed on valid data: {load_error}"
    if code != 0 or record is None:
        return f"evaluate failed on valid data (exit {code}): {stderr[-300:]}"
    metrics = record["metrics"]
    if variant.expect == "same":
        if not _same_split(split, base_split):
            return "loaded a different split than the undamaged dataset"
        if metrics != base_metrics:
            return f"metrics differ from the undamaged dataset: {metrics} vs {base_metrics}"
    r1 = metrics["recall@1"]
    if not (isinstance(r1, float) and math.isfinite(r1) and 0.0 <= r1 <= 100.0):
        return f"recall@1 {r1!r} is not a percentage"
    return ""


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_broken_variant_fails_typed_or_evaluates_correctly(
    layout, base_datasets, tiny_teacher, tmp_path, one_thread
):
    base = base_datasets[layout]
    code, stderr, _, base_record = evaluate_in_process(
        layout, base, tiny_teacher, tmp_path / "b.json"
    )
    assert code == 0, stderr
    base_split = _load(layout, base)
    failures, outcomes = [], Counter()
    for i, variant in enumerate(variants(layout, base)):
        root = variant.materialise(base, tmp_path / f"v{i}")
        problem = _check(
            variant, root, base_split, base_record["metrics"], tiny_teacher, tmp_path / f"{i}.json"
        )
        if problem:
            failures.append(f"{variant.id} (expect {variant.expect}): {problem}")
        outcomes[(variant.kind, variant.expect)] += 1
        shutil.rmtree(root)
    assert not failures, f"{len(failures)} variants mishandled:\n" + "\n".join(failures)
    assert all(any(k == kind for k, _ in outcomes) for kind in KINDS), outcomes


def test_corpus_size(base_datasets):
    counts = {layout: len(variants(layout, base_datasets[layout])) for layout in LAYOUTS}
    assert sum(counts.values()) >= 200 and min(counts.values()) >= 50, counts
