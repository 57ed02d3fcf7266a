"""Sample4Geo-style batch building: unique references per batch, neighbours of an anchor pulled in.

Contrastive training learns most from negatives that are hard to tell apart. Sample4Geo gets
them by construction of the batches: each batch is filled by anchors drawn at random, and
each anchor pulls some of its neighbours into the same batch — the references closest to it
on the ground (GPS, first epochs) and, once the model has been run over the training set,
the references its embedding confuses it with most (dynamic similarity sampling).

Usage::

    sampler = HardNegativeSampler(split, batch_size=64, gps_neighbours=8, sim_neighbours=8)
    for epoch in range(1, epochs + 1):
        if epoch > 1 and (epoch - 1) % 4 == 0:            # refresh the hard negatives
            sampler.update_similarity(query_emb, reference_emb)   # (Q, D), (R, D)
        batches = sampler.epoch_batches(epoch)             # list of lists of pair indices
        mine = rank_slice(batches, rank, world_size)       # this DDP rank's share
        loader = DataLoader(pairs, batch_sampler=mine)

Choices, and where they differ from Sample4Geo's ``shuffle()``:

* Batches hold pair (= query) indices into the split. No two pairs of a batch share their
  positive reference, and for VIGOR no pair's positive is another member's semi-positive
  (that tile also shows the other query's location, so it would be a false negative).
* An anchor with ``n`` neighbours to pull takes the ``ceil(n/2)`` nearest of its ranked list
  and ``floor(n/2)`` at random from the rest of the first ``neighbour_range`` (default
  ``2 n``); a pulled neighbour is a reference, represented by one of its unused pairs.
* GPS neighbours are nearest in planar metres (``split.neighbour_positions()``: UTM for CVACT,
  a local projection otherwise), not haversine on degrees fed as radians.
* The similarity table is per query (the references most similar to that query's
  embedding, excluding its positive and semi-positives), computed in chunks with top-k, so
  the Q x R matrix is never held in memory. Once set it replaces the GPS neighbours.
* Order is a pure function of ``(seed, epoch)`` and the similarity table, so every DDP rank
  builds the same batches without communication, and a resumed run repeats them.
* ``drop_last=True`` (default, as Sample4Geo) drops batches shorter than ``batch_size``: the
  last one of an epoch, and — rarely, near the end of an epoch — one closed early because
  every pair left conflicts with it. Those pairs are skipped for that epoch only; every
  other pair appears exactly once per epoch. With ``drop_last=False`` every pair appears
  exactly once.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree
from tqdm import tqdm

from d4g_edge.log import logger
from train.datasets import CrossViewSplit

__all__ = ["HardNegativeSampler", "rank_slice"]


def rank_slice(batches: list[list[int]], rank: int, world_size: int) -> list[list[int]]:
    """This rank's share of every global batch: its contiguous ``len(batch) // world_size`` chunk.

    Every rank gets the same number of equally sized batches (the all-gather in the loss
    needs that). Contiguous chunks keep an anchor and the neighbours it pulled on the same
    rank as far as possible. A batch not divisible by ``world_size`` loses its last
    ``len % world_size`` pairs, and one smaller than ``world_size`` is dropped on every rank.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    out = []
    for batch in batches:
        n = len(batch) // world_size
        if n:
            out.append(list(batch[rank * n : (rank + 1) * n]))
    return out


class HardNegativeSampler:
    """Builds each epoch's batches of a training split (see the module docstring).

    Args:
        split: the training split; pair ``i`` is query ``i`` with reference
            ``split.positive_index[i]``.
        batch_size: pairs per (global) batch.
        gps_neighbours: references an anchor pulls by distance before the first
            :meth:`update_similarity` (0: none; also none when the split has no coordinates,
            which is logged).
        sim_neighbours: references an anchor pulls by embedding similarity once set (0: none).
        neighbour_range: ranked candidates kept per anchor (default ``2 x`` the larger pull).
        seed: with the epoch, fixes the order.
        drop_last: drop batches shorter than ``batch_size``.
    """

    rank_slice = staticmethod(rank_slice)

    def __init__(
        self,
        split: CrossViewSplit,
        *,
        batch_size: int,
        gps_neighbours: int = 8,
        sim_neighbours: int = 8,
        neighbour_range: int | None = None,
        seed: int = 1,
        drop_last: bool = True,
    ) -> None:
        if batch_size < 1 or gps_neighbours < 0 or sim_neighbours < 0:
            raise ValueError(
                f"need batch_size >= 1 and neighbour counts >= 0, got batch_size={batch_size}, "
                f"gps_neighbours={gps_neighbours}, sim_neighbours={sim_neighbours}"
            )
        if not split.all_matched:
            raise ValueError(
                f"{split.dataset} {split.split}: some queries have no reference in the split; "
                "batches of training pairs need one for every query"
            )
        self.batch_size, self.seed, self.drop_last = batch_size, seed, drop_last
        self.gps_neighbours, self.sim_neighbours = gps_neighbours, sim_neighbours
        self.neighbour_range = neighbour_range or 2 * max(gps_neighbours, sim_neighbours, 1)
        self.num_queries, self.num_references = len(split), split.num_references
        self._positive = np.asarray(split.positive_index, dtype=np.int64)
        self._labels = self._label_indices(split)  # (Q, 1 + S): positive, then semi-positives
        self._label_sets = [tuple(int(x) for x in row if x >= 0) for row in self._labels]
        # queries of each reference, CSR-style: _by_ref[_ref_start[r]:_ref_start[r + 1]]
        self._by_ref = np.argsort(self._positive, kind="stable")
        counts = np.bincount(self._positive, minlength=self.num_references)
        self._ref_start = np.concatenate([[0], np.cumsum(counts)])
        # Only references that are some pair's positive can be pulled into a batch.
        self._trainable = np.flatnonzero(counts)
        self._gps = self._gps_table(split) if gps_neighbours else None
        self._similarity: np.ndarray | None = None  # (Q, neighbour_range) reference indices

    # ---- neighbour tables -------------------------------------------------------------------

    def _label_indices(self, split: CrossViewSplit) -> np.ndarray:
        if split.semi_positive_ids is None:
            return self._positive[:, None]
        ids = np.asarray(split.reference_ids, dtype=np.int64)
        order = np.argsort(ids)
        semi = np.asarray(split.semi_positive_ids, dtype=np.int64)
        at = np.clip(np.searchsorted(ids[order], semi), 0, len(ids) - 1)
        found = ids[order][at] == semi
        if not found.all():
            logger.warning("%d semi-positive ids are not among the references", (~found).sum())
        return np.concatenate([self._positive[:, None], np.where(found, order[at], -1)], axis=1)

    def _gps_table(self, split: CrossViewSplit) -> np.ndarray | None:
        """(R, neighbour_range) nearest trainable references of each reference, -1 padded."""
        if split.reference_utm is None and split.reference_latlon is None:
            logger.warning(
                "%s %s has no reference coordinates: batches get no GPS neighbours until the "
                "first similarity update",
                split.dataset,
                split.split,
            )
            return None
        xy = np.asarray(split.neighbour_positions(), dtype=np.float64)[self._trainable]
        if not np.isfinite(xy).all():
            raise ValueError(f"{split.dataset} {split.split}: non-finite reference coordinates")
        k = min(self.neighbour_range + 1, len(xy))
        _, near = cKDTree(xy).query(xy, k=k)
        near = self._trainable[np.asarray(near).reshape(len(xy), k)]
        table = np.full((self.num_references, self.neighbour_range), -1, dtype=np.int32)
        for row, ref in enumerate(self._trainable):
            others = near[row][near[row] != ref][: self.neighbour_range]  # drop the reference
            table[ref, : len(others)] = others
        return table

    def update_similarity(
        self, query_emb: Any, reference_emb: Any, *, chunk_size: int = 512
    ) -> None:
        """Store each query's most similar non-matching trainable references (dot product).

        Args:
            query_emb: ``(Q, D)`` embeddings of the split's queries (numpy or torch).
            reference_emb: ``(R, D)`` embeddings of all of the split's references.
        """
        q = _as_numpy(query_emb)
        r = _as_numpy(reference_emb)
        if q.ndim != 2 or r.ndim != 2 or q.shape[1] != r.shape[1]:
            raise ValueError(f"need (Q, D) and (R, D) embeddings, got {q.shape} and {r.shape}")
        if (len(q), len(r)) != (self.num_queries, self.num_references):
            raise ValueError(
                f"embeddings of {len(q)} queries / {len(r)} references do not fit the split of "
                f"{self.num_queries} queries / {self.num_references} references"
            )
        cand = r[self._trainable]  # columns of the similarity chunk
        column = np.full(self.num_references, -1, dtype=np.int64)
        column[self._trainable] = np.arange(len(self._trainable))
        k = min(self.neighbour_range, len(cand))
        table = np.full((self.num_queries, self.neighbour_range), -1, dtype=np.int32)
        for start in tqdm(range(0, len(q), chunk_size), desc="similarity", leave=False):
            stop = min(start + chunk_size, len(q))
            sims = q[start:stop] @ cand.T
            labels = column[np.maximum(self._labels[start:stop], 0)]
            rows = np.broadcast_to(np.arange(stop - start)[:, None], labels.shape)
            keep = (self._labels[start:stop] >= 0) & (labels >= 0)
            sims[rows[keep], labels[keep]] = -np.inf  # never a hard negative: own positives
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < len(cand) else None
            if top is None:
                top = np.broadcast_to(np.arange(len(cand)), (stop - start, len(cand)))
            top_sims = np.take_along_axis(sims, top, axis=1)
            order = np.argsort(-top_sims, axis=1, kind="stable")
            top = np.take_along_axis(top, order, axis=1)
            valid = np.isfinite(np.take_along_axis(top_sims, order, axis=1))
            table[start:stop, :k] = np.where(valid, self._trainable[top], -1)
        self._similarity = table
        logger.info("similarity sampling: %d hard negatives per query", k)

    @property
    def similarity_table(self) -> np.ndarray | None:
        """``(Q, neighbour_range)`` reference indices, most similar first (-1 = none), or None."""
        return None if self._similarity is None else self._similarity.copy()

    # ---- batches ----------------------------------------------------------------------------

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """Batches of pair indices for ``epoch``; the same for the same ``(seed, epoch)``."""
        rng = np.random.default_rng([self.seed, epoch])
        if self._similarity is not None and self.sim_neighbours:
            table, pull, per_query = self._similarity, self.sim_neighbours, True
        elif self._gps is not None and self.gps_neighbours:
            table, pull, per_query = self._gps, self.gps_neighbours, False
        else:
            table, pull, per_query = None, 0, False
        labels = self._label_sets
        used = np.zeros(self.num_queries, dtype=bool)
        batches: list[list[int]] = []
        batch: list[int] = []
        positives: set[int] = set()  # positives of the batch's pairs
        blocked: set[int] = set()  # positives and semi-positives of the batch's pairs
        bar = tqdm(total=self.num_queries, desc=f"batches epoch {epoch}", leave=False)

        def fits(q: int) -> bool:
            return labels[q][0] not in blocked and positives.isdisjoint(labels[q])

        def add(q: int) -> None:
            batch.append(q)
            used[q] = True
            positives.add(labels[q][0])
            blocked.update(labels[q])
            bar.update()

        def close() -> None:
            if batch and (len(batch) == self.batch_size or not self.drop_last):
                batches.append(list(batch))
            batch.clear()
            positives.clear()
            blocked.clear()

        pool = deque(rng.permutation(self.num_queries).tolist())
        misses = 0
        while pool:
            q = pool.popleft()
            if used[q]:
                continue
            if not fits(q):
                pool.append(q)  # retry in a later batch
                misses += 1
                if misses >= len(pool):  # everything left conflicts with this batch
                    close()
                    misses = 0
                continue
            misses = 0
            add(q)
            if table is not None:
                row = table[q] if per_query else table[self._positive[q]]
                for ref in self._pick(row[row >= 0], pull, rng):
                    if len(batch) >= self.batch_size:
                        break
                    members = self._by_ref[self._ref_start[ref] : self._ref_start[ref + 1]]
                    for q2 in rng.permutation(members):
                        if not used[q2] and fits(int(q2)):
                            add(int(q2))
                            break
            if len(batch) >= self.batch_size:
                close()
        close()
        bar.close()
        logger.debug(
            "epoch %d: %d batches, %d pairs left out, neighbours from %s",
            epoch,
            len(batches),
            self.num_queries - sum(map(len, batches)),
            "similarity" if per_query else "gps" if table is not None else "nowhere",
        )
        return batches

    @staticmethod
    def _pick(ranked: np.ndarray, n: int, rng: np.random.Generator) -> list[int]:
        """The ``ceil(n/2)`` first of ``ranked`` and ``floor(n/2)`` random others of it."""
        near = (n + 1) // 2
        rest = ranked[near:]
        far = rng.choice(rest, size=min(n - near, len(rest)), replace=False) if len(rest) else []
        return [int(x) for x in ranked[:near]] + [int(x) for x in far]

    # ---- resume -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The similarity table as a tensor (loadable with ``torch.load(weights_only=True)``)."""
        sim = self._similarity
        return {
            "num_queries": self.num_queries,
            "num_references": self.num_references,
            "similarity": None if sim is None else torch.from_numpy(sim.copy()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        got = (int(state["num_queries"]), int(state["num_references"]))
        if got != (self.num_queries, self.num_references):
            raise ValueError(
                f"sampler state is for a split of {got[0]} queries / {got[1]} references, this "
                f"split has {self.num_queries} / {self.num_references}: resume on the same data"
            )
        sim = state["similarity"]
        if sim is not None and tuple(sim.shape) != (self.num_queries, self.neighbour_range):
            raise ValueError(
                f"sampler state keeps {sim.shape[1]} neighbours per query, this sampler "
                f"{self.neighbour_range}: resume with the same neighbour settings"
            )
        self._similarity = None if sim is None else np.asarray(sim, dtype=np.int32)


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)
