"""Batch building: uniqueness, coverage, neighbour pulling, determinism, DDP slices, resume."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from train.datasets import CrossViewSplit
from train.datasets.sampler import HardNegativeSampler, rank_slice


def _split(xy: np.ndarray | None, positive: np.ndarray | None = None, semi=None) -> CrossViewSplit:
    """A training split with one reference per row of ``xy`` (metres, as CVACT's UTM)."""
    r = len(xy) if xy is not None else int(positive.max()) + 1
    positive = np.arange(r) if positive is None else positive
    ref_ids = np.arange(100, 100 + r, dtype=np.int64)  # ids differ from indices on purpose
    return CrossViewSplit(
        dataset="cvact",
        split="train",
        root=Path("."),
        query_paths=tuple(Path(f"g{i}.jpg") for i in range(len(positive))),
        reference_paths=tuple(Path(f"s{i}.jpg") for i in range(r)),
        reference_ids=ref_ids,
        query_ids=ref_ids[positive],
        positive_index=positive,
        semi_positive_ids=None if semi is None else ref_ids[semi],
        reference_utm=xy,
    )


def _grid(side: int, spacing: float = 100.0) -> np.ndarray:
    ii, jj = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    return np.stack([ii.ravel(), jj.ravel()], axis=1).astype(np.float64) * spacing + 5e5


def test_unique_references_and_full_coverage_without_drop_last() -> None:
    split = _split(_grid(12))
    batches = HardNegativeSampler(split, batch_size=16, drop_last=False).epoch_batches(1)
    flat = [q for b in batches for q in b]
    assert sorted(flat) == list(range(len(split)))  # every pair exactly once
    for b in batches:
        refs = split.positive_index[b]
        assert len(set(refs.tolist())) == len(b)
    assert [len(b) for b in batches[:-1]] == [16] * (len(batches) - 1)


def test_drop_last_keeps_only_full_batches() -> None:
    split = _split(_grid(12))  # 144 pairs = 9 batches of 16
    batches = HardNegativeSampler(split, batch_size=20).epoch_batches(3)
    assert all(len(b) == 20 for b in batches)
    flat = [q for b in batches for q in b]
    assert len(flat) == len(set(flat)) == 7 * 20  # 144 // 20 full batches, 4 pairs left out


def _nearest_in_batch_rate(split: CrossViewSplit, batches: list[list[int]]) -> float:
    xy = split.reference_utm
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    nearest = dist.argmin(axis=1)  # references == queries here
    batch_of = {q: i for i, b in enumerate(batches) for q in b}
    hits = [batch_of[q] == batch_of.get(int(nearest[q]), -1) for q in batch_of]
    return float(np.mean(hits))


def test_gps_neighbours_share_the_anchor_batch_far_more_than_chance() -> None:
    split = _split(_grid(20))  # 400 pairs, batch 16: chance of a given pair in one's batch ~4%
    gps = HardNegativeSampler(split, batch_size=16, gps_neighbours=6, seed=3)
    plain = HardNegativeSampler(split, batch_size=16, gps_neighbours=0, seed=3)
    with_gps = np.mean([_nearest_in_batch_rate(split, gps.epoch_batches(e)) for e in (1, 2)])
    without = np.mean([_nearest_in_batch_rate(split, plain.epoch_batches(e)) for e in (1, 2)])
    assert without < 0.1
    assert with_gps > 0.25 and with_gps > 4 * without


def test_batches_depend_only_on_seed_and_epoch() -> None:
    split = _split(_grid(10))
    a = HardNegativeSampler(split, batch_size=8, seed=7)
    b = HardNegativeSampler(split, batch_size=8, seed=7)
    assert a.epoch_batches(2) == b.epoch_batches(2) == a.epoch_batches(2)
    assert a.epoch_batches(2) != a.epoch_batches(3)
    assert a.epoch_batches(2) != HardNegativeSampler(split, batch_size=8, seed=8).epoch_batches(2)


def test_rank_slices_partition_each_global_batch() -> None:
    batches = [list(range(0, 8)), list(range(8, 16)), [16, 17, 18], [19]]
    slices = [rank_slice(batches, r, 2) for r in range(2)]
    assert slices[0] == [[0, 1, 2, 3], [8, 9, 10, 11], [16]]
    assert slices[1] == [[4, 5, 6, 7], [12, 13, 14, 15], [17]]
    split = _split(_grid(10))
    real = HardNegativeSampler(split, batch_size=12).epoch_batches(1)
    per_rank = [HardNegativeSampler.rank_slice(real, r, 3) for r in range(3)]
    assert len({len(s) for s in per_rank}) == 1
    for i, batch in enumerate(real):
        assert [q for s in per_rank for q in s[i]] == batch
    with pytest.raises(ValueError, match="rank"):
        rank_slice(batches, 2, 2)


def _vigor_like() -> tuple[CrossViewSplit, np.ndarray, np.ndarray]:
    """A 10x10 tile grid; 150 panoramas, some tiles with two; semi-positives = 3 nearest tiles."""
    xy = _grid(10, spacing=50.0)
    rng = np.random.default_rng(0)
    positive = np.concatenate([np.arange(100), rng.choice(100, size=50, replace=False)])
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    semi = np.argsort(dist, axis=1, kind="stable")[positive, :3]
    return _split(xy, positive, semi), positive, semi


def test_vigor_batches_avoid_shared_and_semi_positive_tiles() -> None:
    split, positive, semi = _vigor_like()
    sampler = HardNegativeSampler(split, batch_size=10, gps_neighbours=4, drop_last=False)
    for epoch in (1, 2):
        batches = sampler.epoch_batches(epoch)
        assert sorted(q for b in batches for q in b) == list(range(len(split)))
        for b in batches:
            pos = [int(positive[q]) for q in b]
            assert len(set(pos)) == len(pos)
            for q in b:
                others = set(pos) - {int(positive[q])}
                assert others.isdisjoint(semi[q].tolist()), (q, b)


def test_similarity_table_by_hand_and_chunking() -> None:
    split = _split(_grid(4))  # 16 pairs
    refs = np.eye(16, dtype=np.float32)
    # query i looks like its own tile and, less, like tile (i + 3) % 16 -> its hardest negative
    queries = 0.8 * refs + 0.6 * np.roll(refs, 3, axis=1)
    sampler = HardNegativeSampler(split, batch_size=4, gps_neighbours=0, sim_neighbours=2)
    sampler.update_similarity(torch.from_numpy(queries), refs, chunk_size=3)
    table = sampler.similarity_table
    assert table.shape == (16, 4)
    assert table[:, 0].tolist() == [(i + 3) % 16 for i in range(16)]
    assert not (table == np.arange(16)[:, None]).any()  # never the own positive
    again = HardNegativeSampler(split, batch_size=4, gps_neighbours=0, sim_neighbours=2)
    again.update_similarity(queries, refs, chunk_size=100)
    assert np.array_equal(again.similarity_table[:, 0], table[:, 0])


def test_similarity_excludes_semi_positives_and_pulls_hard_negatives() -> None:
    split, positive, semi = _vigor_like()
    rng = np.random.default_rng(1)
    refs = rng.normal(size=(100, 16)).astype(np.float32)
    queries = refs[positive] + 0.5 * refs[semi[:, 0]]  # most similar to a semi-positive
    rates = {}
    for pull in (0, 4):
        sampler = HardNegativeSampler(split, batch_size=10, gps_neighbours=0, sim_neighbours=pull)
        sampler.update_similarity(queries, refs)
        table = sampler.similarity_table
        for q in range(len(split)):
            assert int(positive[q]) not in table[q] and set(semi[q]).isdisjoint(table[q])
        # how often a pair's hardest negative tile is in its batch
        batches = sampler.epoch_batches(5)
        rates[pull] = np.mean([table[q, 0] in positive[b] for b in batches for q in b])
    assert rates[4] > 2 * rates[0]  # 0.22 vs 0.09 (chance: ~9 of the 99 other tiles)


def test_state_round_trip_reproduces_batches(tmp_path) -> None:
    split = _split(_grid(6))
    sampler = HardNegativeSampler(split, batch_size=6, sim_neighbours=2)
    rng = np.random.default_rng(2)
    sampler.update_similarity(rng.normal(size=(36, 8)), rng.normal(size=(36, 8)))
    torch.save(sampler.state_dict(), tmp_path / "s.pt")
    resumed = HardNegativeSampler(split, batch_size=6, sim_neighbours=2)
    resumed.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert resumed.epoch_batches(4) == sampler.epoch_batches(4)
    other = HardNegativeSampler(_split(_grid(5)), batch_size=6)
    with pytest.raises(ValueError, match="same data"):
        other.load_state_dict(sampler.state_dict())


def test_split_without_coordinates_logs_and_samples_plainly(caplog) -> None:
    split = _split(None, positive=np.arange(30))
    with caplog.at_level(logging.WARNING, logger="d4g_edge"):
        sampler = HardNegativeSampler(split, batch_size=5, gps_neighbours=4)
    assert "no reference coordinates" in caplog.text
    assert sorted(q for b in sampler.epoch_batches(1) for q in b) == list(range(30))


def test_bad_embeddings_are_rejected() -> None:
    sampler = HardNegativeSampler(_split(_grid(3)), batch_size=3)
    with pytest.raises(ValueError, match="do not fit"):
        sampler.update_similarity(np.zeros((8, 4)), np.zeros((9, 4)))
    with pytest.raises(ValueError, match=r"\(Q, D\)"):
        sampler.update_similarity(np.zeros((9, 4)), np.zeros((9, 5)))
