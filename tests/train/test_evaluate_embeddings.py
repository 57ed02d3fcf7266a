"""python -m train.evaluate --embeddings: file format, validation, metrics and the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from train.evaluate import (
    EmbeddingsFormatError,
    EvaluateConfig,
    build_parser,
    evaluate_embeddings,
    load_embeddings,
    save_embeddings,
)

ROOT = Path(__file__).resolve().parents[2]
ARC_001_DEG = 0.001 * math.pi / 180 * 6_371_008.8  # 0.001 degree of latitude in metres


def unit(deg):
    a = np.radians(np.asarray(deg, dtype=np.float64))
    return np.column_stack([np.cos(a), np.sin(a)])


def example():
    """Gallery at 0/30/60/90 degrees; queries at 0, 40, 80 degrees with known ranks.

    q0 (true 5 @0):  itself is best                          -> rank 0, top-1 ref 0
    q1 (true 8 @90): 30, 60 and 0 are all closer to 40 than 90 -> rank 3, top-1 ref 1
    q2 (true 7 @60): only 90 is closer to 80                  -> rank 1, top-1 ref 3
    """
    ref_ll = np.column_stack([np.arange(4) * 0.001, np.zeros(4)])
    return {
        "query": unit([0, 40, 80]),  # float64 on purpose: saving casts to float32
        "reference": unit([0, 30, 60, 90]),
        "query_ids": np.array([5, 8, 7]),
        "reference_ids": np.array([5, 6, 7, 8]),
        "query_latlon": ref_ll[[0, 3, 2]],
        "reference_latlon": ref_ll,
        # q1 excuses 6 and 7 but not 5 -> miss; q2 excuses 8 -> hit; q0 has rank 0 -> hit
        "semi_positive_ids": np.array([[6, 7, 8], [6, 7, 6], [8, 6, 5]]),
    }


def test_save_load_round_trip_is_atomic_and_typed(tmp_path):
    path = save_embeddings(tmp_path / "sub" / "emb.npz", **example())
    assert path == tmp_path / "sub" / "emb.npz"
    assert sorted(p.name for p in path.parent.iterdir()) == ["emb.npz"]  # no temp leftovers
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(example())
        assert npz["query"].dtype == np.float32 and npz["query_ids"].dtype == np.int64
    data = load_embeddings(path)
    np.testing.assert_allclose(data.query, example()["query"], atol=1e-7)
    np.testing.assert_array_equal(data.semi_positive_ids, example()["semi_positive_ids"])
    # overwriting replaces the file whole
    save_embeddings(path, unit([0]), unit([0]), [1], [1])
    assert load_embeddings(path).query_latlon is None


def test_evaluate_file_gives_hand_computed_metrics(tmp_path):
    path = save_embeddings(tmp_path / "emb.npz", **example())
    m = evaluate_embeddings(path, ks=(1, 2, 4))
    assert m.recall == pytest.approx((100 / 3, 200 / 3, 100.0))
    assert m.one_percent_k == 0 and m.recall_one_percent == 0.0
    assert m.hit_rate == pytest.approx(200 / 3)
    # errors: q0 0 m, q1 lands 0.002 deg from truth, q2 0.001 deg
    loc = m.position
    assert loc.median_m == pytest.approx(ARC_001_DEG, rel=1e-6)
    assert loc.mean_m == pytest.approx(ARC_001_DEG, rel=1e-6)  # (0 + 2 + 1) / 3 arcs
    assert loc.recall_within == pytest.approx((100 / 3, 100 / 3, 100 / 3))


def run_cli(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "train.evaluate", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_scores_a_file_and_writes_json(tmp_path):
    path = save_embeddings(tmp_path / "emb.npz", **example())
    out = tmp_path / "res" / "metrics.json"
    proc = run_cli("--embeddings", path, "--json", out, "--ks", "1", "2")
    assert proc.returncode == 0, proc.stderr
    assert "recall@2" in proc.stdout and "hit_rate" in proc.stdout
    record = json.loads(out.read_text())
    assert record["mode"] == "embeddings" and record["embeddings"] == str(path)
    assert record["metrics"]["recall@1"] == pytest.approx(100 / 3)
    assert record["metrics"]["recall@2"] == pytest.approx(200 / 3)
    assert record["metrics"]["recall@25m"] == pytest.approx(100 / 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "cvusa", "--data", "x"], "needs --ground, --satellite"),
        (["--embeddings", "e.npz", "--dataset", "cvusa"], "not allowed with"),
        (["--embeddings", "e.npz", "--ground", "g.pt"], "only apply with --dataset"),
        (["--embeddings", "does/not/exist.npz"], "does not exist"),
        ([], "one of the arguments --embeddings --dataset is required"),
    ],
)  # fmt: skip
def test_cli_rejects_bad_invocations(args, message):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert message in proc.stderr


def write_raw(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"query_ids": None}, r"missing arrays \['query_ids'\]"),
        ({"query": unit([0, 40, 80]) * 2}, "must be L2-normalised"),
        ({"query": np.full((3, 2), np.nan)}, "query contains NaN or inf"),
        ({"reference": unit([0, 30, 60])}, r"reference_ids must have shape \(3,\)"),
        ({"query_ids": np.array([5.0, 8.0, 7.0])}, "query_ids must be integers"),
        ({"query_latlon": np.zeros((3, 3))}, r"query_latlon must have shape \(3, 2\)"),
        ({"semi_positive_ids": np.zeros(3, np.int64)}, r"shape \(3, S\)"),
        ({"reference": np.ones((4, 3)) / math.sqrt(3)}, "query dim 2 != reference dim 3"),
    ],
)
def test_load_rejects_malformed_files(tmp_path, change, message):
    arrays = {k: v for k, v in (example() | change).items() if v is not None}
    path = write_raw(tmp_path / "bad.npz", **arrays)
    with pytest.raises(EmbeddingsFormatError, match=message) as info:
        load_embeddings(path)
    assert str(path) in str(info.value)  # the message names the file


def test_load_refuses_pickled_and_non_npz_files(tmp_path):
    pickled = write_raw(tmp_path / "obj.npz", **example() | {"query_ids": np.array([5, "x", None])})
    with pytest.raises(EmbeddingsFormatError, match="pickled object arrays"):
        load_embeddings(pickled)
    text = tmp_path / "notes.npz"
    text.write_text("not an archive")
    with pytest.raises(EmbeddingsFormatError, match=r"not a readable \.npz"):
        load_embeddings(text)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_embeddings(tmp_path / "missing.npz")


def test_save_rejects_bad_arrays_without_leaving_a_file(tmp_path):
    with pytest.raises(EmbeddingsFormatError, match="L2-normalised"):
        save_embeddings(tmp_path / "e.npz", np.ones((2, 2)), unit([0, 1]), [0, 1], [0, 1])
    with pytest.raises(TypeError, match="unknown arrays"):
        save_embeddings(tmp_path / "e.npz", unit([0]), unit([0]), [0], [0], latlon=np.zeros(2))
    assert list(tmp_path.iterdir()) == []


def test_config_fields_and_flags_do_not_drift():
    dests = {a.dest for a in build_parser()._actions if a.dest != "help"}
    assert dests == {f.name for f in dataclasses.fields(EvaluateConfig)}
