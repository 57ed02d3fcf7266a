"""A learned linear projection for ``benchmarks.projection`` (issue 22): fitted, not PCA.

``P`` (D, d), no bias, trained so that ``unit(q @ P)`` of a ground query and ``unit(r @ P)``
of its true satellite row score high against every other row: symmetric InfoNCE, the query
against the whole row bank (one cross-entropy over all rows) and each positive row against
the batch's queries (other queries sharing that row are not its negatives). Adam on torch,
one temperature at a time from ``taus``; the temperature and the step to keep are chosen on
held-out queries (``val`` of the pairs, never a test split) by their R@1 (the group, e.g.
tile, of the best row is the positive's group) and, on ties, their InfoNCE loss.

Usage::

    fit = fit_projection(queries, rows, positive_row, 32, group=tile_of_row)
    fit.basis                                                # (D, 32) float32
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from d4g_edge.vq import pca, unit

INITS = ("pca", "random")


@dataclass
class Fit:
    basis: np.ndarray  # (D, d) float32
    tau: float
    step: int  # the step kept (best held-out R@1)
    val_r1: float  # held-out R@1 (%) at that step, float projections
    init_val_r1: float  # held-out R@1 (%) of the initial basis (PCA: where training starts)
    seconds: float
    history: dict = field(default_factory=dict)  # tau -> [(step, val R@1, val loss)]

    def summary(self) -> dict:
        return {
            "tau": self.tau,
            "step": self.step,
            "val_r1": self.val_r1,
            "init_val_r1": self.init_val_r1,
            "fit_s": self.seconds,
        }


def initial_basis(rows: np.ndarray, dims: int, init: str, seed: int = 0) -> np.ndarray:
    """(D, dims) start: the rows' leading principal components, or a random orthonormal set."""
    if init == "pca":
        x = unit(rows)
        return pca((x - x.mean(0)).astype(np.float32), dims)[1]
    if init == "random":
        g = np.random.default_rng(seed).standard_normal((rows.shape[1], dims))
        return np.linalg.qr(g)[0].astype(np.float32)
    raise ValueError(f"init must be one of {INITS}, got {init!r}")


def group_r1(zq: np.ndarray, zr: np.ndarray, pos: np.ndarray, group: np.ndarray) -> float:
    """R@1 (%): the group of each query's best row (by dot product) is its positive's group."""
    best = np.argmax(zq @ zr.T, axis=1)
    return float(100.0 * np.mean(group[best] == group[pos]))


def split_pairs(n: int, val: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices of ``n`` pairs, a seeded ``val`` share held out."""
    order = np.random.default_rng(seed).permutation(n)
    k = max(1, round(val * n))
    return np.sort(order[k:]), np.sort(order[:k])


def fit_projection(
    query: np.ndarray,
    rows: np.ndarray,
    pos: np.ndarray,
    dims: int,
    *,
    group: np.ndarray | None = None,
    init: str = "pca",
    taus: tuple[float, ...] = (0.03, 0.07),
    val: float = 0.1,
    steps: int = 1500,
    batch: int = 256,
    lr: float = 2e-3,
    eval_every: int = 25,
    patience: int = 12,
    seed: int = 0,
) -> Fit:
    """Fit ``P`` on (query, its true row ``pos``) pairs against the bank ``rows`` (see the
    module doc); ``group`` of each row (default: itself) is what R@1 counts as a hit."""
    t0 = time.perf_counter()
    q, r = unit(query), unit(rows)
    pos = np.asarray(pos, np.int64)
    group = np.arange(len(r)) if group is None else np.asarray(group)
    tr, va = split_pairs(len(q), val, seed)
    w0 = initial_basis(r, dims, init, seed)
    init_r1 = group_r1(unit(q[va] @ w0), unit(r @ w0), pos[va], group)
    best, history = None, {}
    for tau in taus:
        w, step, r1, loss, hist = _train(
            q, r, pos, (tr, va), group, w0, tau, (steps, batch, lr, eval_every, patience), seed
        )
        history[tau] = hist
        if best is None or (r1, -loss) > (best[3], -best[4]):
            best = (w, tau, step, r1, loss)
    w, tau, step, r1, _ = best
    return Fit(w, tau, step, r1, init_r1, time.perf_counter() - t0, history)


def _train(q, r, pos, split, group, w0, tau, schedule, seed):
    """One temperature: Adam from ``w0``; the basis of the best held-out R@1 (ties: loss)
    is kept; stops after ``patience`` evaluations without a better one."""
    import torch
    import torch.nn.functional as F

    tr, va = split
    steps, batch, lr, eval_every, patience = schedule
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    Q, R = torch.from_numpy(q), torch.from_numpy(r)
    P = torch.from_numpy(pos)
    W = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = torch.optim.Adam([W], lr=lr)
    kept, hist, stale = None, [], 0
    for step in range(0, steps + 1):
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                loss = float(_loss(Q[va], R, P[va], W, tau, F))
                w = W.detach().numpy().copy()
            r1 = group_r1(unit(q[va] @ w), unit(r @ w), pos[va], group)
            hist.append((step, r1, loss))
            if kept is None or (r1, -loss) > (kept[2], -kept[3]):
                kept, stale = (w, step, r1, loss), 0
            else:
                stale += 1
                if stale >= patience:
                    break
        if step == steps:
            break
        idx = torch.from_numpy(rng.choice(tr, min(batch, len(tr)), replace=False))
        opt.zero_grad()
        _loss(Q[idx], R, P[idx], W, tau, F).backward()
        opt.step()
    return (*kept, hist)


def _loss(qb, R, pb, W, tau, F):
    """Symmetric InfoNCE of a batch: each query over every row, each positive row over the
    batch's queries (queries sharing that row are masked out, except its own)."""
    import torch

    zq = F.normalize(qb @ W, dim=1)
    zr = F.normalize(R @ W, dim=1)
    to_rows = F.cross_entropy(zq @ zr.T / tau, pb)
    logits = zr[pb] @ zq.T / tau
    same = (pb[:, None] == pb[None, :]) & ~torch.eye(len(pb), dtype=torch.bool)
    logits = logits.masked_fill(same, float("-inf"))
    to_queries = F.cross_entropy(logits, torch.arange(len(pb)))
    return (to_rows + to_queries) / 2
