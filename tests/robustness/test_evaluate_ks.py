"""``python -m train.evaluate --dataset ... --ks``: the cut-offs asked for are the ones reported
on ground splits too (the split's scorer once always used 1/5/10), and without ``--ks`` the
output keeps R@1, R@5 and R@10.

The recalls are checked against ranks computed here from the saved embeddings with plain
numpy (the true reference's place among the references by descending cosine score).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np

from train.evaluate import main


def _evaluate(layout: str, root: Path, ckpt: Path, tmp_path: Path, *extra: str) -> dict:
    out, saved = tmp_path / f"{layout}.json", tmp_path / f"{layout}.npz"
    argv = ["--dataset", layout, "--data", str(root), "--ground", str(ckpt)]
    argv += ["--satellite", str(ckpt), "--json", str(out), "--save-embeddings", str(saved)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main([*argv, *extra]) == 0
    return json.loads(out.read_text())["metrics"]


def _recalls_by_hand(path: Path, ks: tuple[int, ...]) -> dict[str, float]:
    with np.load(path) as e:
        scores = e["query"] @ e["reference"].T
        where = {int(r): i for i, r in enumerate(e["reference_ids"])}
        truth = np.array([where[int(q)] for q in e["query_ids"]])
    true_score = scores[np.arange(len(scores)), truth]
    rank = (scores > true_score[:, None]).sum(axis=1)  # references scored above the truth
    return {f"recall@{k}": float((rank < k).mean() * 100) for k in ks}


def test_ks_sets_the_recall_cut_offs_on_a_ground_split(
    base_datasets, tiny_teacher, tmp_path, one_thread
):
    root = base_datasets["cvusa"]
    asked = _evaluate("cvusa", root, tiny_teacher, tmp_path, "--ks", "1", "2", "3")
    recalls = {k: v for k, v in asked.items() if k.startswith("recall@") and k[7:].isdigit()}
    assert recalls == _recalls_by_hand(tmp_path / "cvusa.npz", (1, 2, 3))
    assert asked["num_references"] == 4  # cut-offs below it: not all trivially 100 %

    default = _evaluate("cvusa", root, tiny_teacher, tmp_path)
    recalls = {k: v for k, v in default.items() if k.startswith("recall@") and k[7:].isdigit()}
    assert recalls == _recalls_by_hand(tmp_path / "cvusa.npz", (1, 5, 10))


def test_ks_applies_to_vigor_too(base_datasets, tiny_teacher, tmp_path, one_thread):
    metrics = _evaluate("vigor", base_datasets["vigor"], tiny_teacher, tmp_path, "--ks", "2", "7")
    cut_offs = sorted(k for k in metrics if k.startswith("recall@") and k[7:].isdigit())
    assert cut_offs == ["recall@2", "recall@7"]
    assert metrics["hit_rate"] is not None  # still VIGOR's full record
