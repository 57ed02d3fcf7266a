"""Teacher-embedding cache: embed the training set once, then distil without the teacher.

For every training pair and every geometric *variant* (flip x quarter turn: 8, applied to
both views consistently, see :func:`apply_variant`) the frozen teacher's ground and satellite
embeddings are stored in memory-mapped ``(V, N, D)`` float32 ``.npy`` files. Distillation then
reads targets by ``(variant, pair)``, so a step costs only the student's forward/backward.

The cache is keyed by the teacher weights' SHA-256, the split, the variants and the teacher's
input sizes (``cache.json``, written last, marks a complete cache); any mismatch rebuilds it.
Under torchrun every rank embeds every ``world_size``-th row into the shared files.

Usage::

    cache = TeacherCache.build(cache_dir, teacher, key, pairs, views=("ground",), info=info)
    target = cache.lookup("ground", variant=3, index=17)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from d4g_edge.fileio import atomic_write
from d4g_edge.log import logger
from train.datasets import PairDataset
from train.datasets.augment import NUM_VARIANTS
from train.loop.distributed import DistInfo, barrier

META_FILE = "cache.json"


class TeacherInputs(Dataset):
    """Teacher-resolution inputs of rows ``(variant, pair)`` for the requested views."""

    def __init__(self, pairs: PairDataset, rows: np.ndarray, num_pairs: int) -> None:
        self.pairs, self.rows, self.n = pairs, rows, num_pairs

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, j: int):
        variant, index = divmod(int(self.rows[j]), self.n)
        g, s = self.pairs.variant_pair(index, variant)
        return self.pairs.tensor("ground", g), self.pairs.tensor("satellite", s), int(self.rows[j])


class TeacherCache:
    def __init__(self, directory: Path, views: Sequence[str]) -> None:
        self.dir = Path(directory)
        self.arrays = {v: np.load(self.dir / f"{v}.npy", mmap_mode="r") for v in views}

    def lookup(self, view: str, variant: int, index: int) -> np.ndarray:
        return np.array(self.arrays[view][variant, index])  # a writable copy off the memmap

    def cached_views(self) -> list[str]:
        """The views whose complete embeddings this cache directory holds."""
        return json.loads((self.dir / META_FILE).read_text()).get("cached_views", [])

    @staticmethod
    def is_valid(directory: Path, key: dict, views: Sequence[str] = ()) -> bool:
        """Whether ``directory`` holds a complete cache for ``key`` with (at least) ``views``:
        a cache of both views serves a single-view run too."""
        meta = Path(directory) / META_FILE
        if not meta.is_file():
            return False
        stored = json.loads(meta.read_text())
        cached = stored.pop("cached_views", [])
        return stored == key and set(views) <= set(cached)

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        directory: Path,
        teacher: nn.Module,
        key: dict,
        pairs: PairDataset,
        *,
        views: Sequence[str],
        info: DistInfo,
        batch_size: int = 64,
        variants: int = NUM_VARIANTS,
    ) -> TeacherCache:
        """Open the cache in ``directory`` if it matches ``key``, else (re)build it."""
        directory = Path(directory)
        if cls.is_valid(directory, key, views):
            logger.info("teacher cache %s is up to date", directory)
            return cls(directory, views)
        n, dim = len(pairs), int(teacher.embed_dim)
        if info.is_main:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / META_FILE).unlink(missing_ok=True)  # incomplete until rewritten
            for v in views:
                np.lib.format.open_memmap(
                    directory / f"{v}.npy", mode="w+", dtype=np.float32, shape=(variants, n, dim)
                ).flush()
        barrier(info)
        out = {v: np.load(directory / f"{v}.npy", mmap_mode="r+") for v in views}
        rows = np.arange(info.rank, variants * n, info.world_size)
        loader = DataLoader(TeacherInputs(pairs, rows, n), batch_size=batch_size)
        teacher = teacher.to(info.device).eval()
        for g, s, flat in tqdm(loader, desc="teacher cache", disable=not info.is_main):
            var, idx = np.divmod(flat.numpy(), n)
            for view, x in (("ground", g), ("satellite", s)):
                if view in out:
                    out[view][var, idx] = teacher(x.to(info.device)).float().cpu().numpy()
        for arr in out.values():
            arr.flush()
        del out
        barrier(info)
        if info.is_main:
            text = json.dumps({**key, "cached_views": list(views)}, indent=2, sort_keys=True)
            atomic_write(directory / META_FILE, text)
            logger.info(
                "teacher cache: %d variants x %d pairs x %s -> %s",
                variants,
                n,
                list(views),
                directory,
            )
        barrier(info)
        return cls(directory, views)
