"""Embedding a set of images with an encoder, sharded across torchrun ranks.

Each rank embeds every ``world_size``-th image and all ranks receive the assembled
``(N, D)`` array (:func:`train.loop.distributed.gather_rows`), so evaluation and similarity
sampling give identical answers however many processes run.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from train.loop.distributed import DistInfo, gather_rows, unwrap


@torch.no_grad()
def embed_dataset(
    encoder: nn.Module,
    dataset: Dataset,
    info: DistInfo,
    *,
    batch_size: int = 64,
    workers: int = 0,
    desc: str = "embed",
) -> np.ndarray:
    """Embeddings (float32, ``len(dataset) x D``) of a dataset yielding ``(image, index)``."""
    encoder = unwrap(encoder)
    was_training = encoder.training
    encoder.eval()
    n = len(dataset)
    mine = np.arange(info.rank, n, info.world_size)
    loader = DataLoader(
        Subset(dataset, mine.tolist()), batch_size=batch_size, num_workers=workers, shuffle=False
    )
    rows = []
    for images, _ in tqdm(loader, desc=desc, disable=not info.is_main, leave=False):
        rows.append(encoder(images.to(info.device)).float().cpu().numpy())
    encoder.train(was_training)
    local = np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)
    if local.shape[0] == 0:
        # a rank with nothing to embed still needs the right trailing shape
        dim = int(encoder(dataset[0][0][None].to(info.device)).shape[1])
        local = np.zeros((0, dim), np.float32)
    return gather_rows(info, mine, local.astype(np.float32), n)


def centre(x, mu):
    """``normalise(x - mu)`` row-wise (numpy or torch); ``mu=None`` leaves ``x`` as is."""
    if mu is None:
        return x
    if isinstance(x, np.ndarray):
        y = x - np.asarray(mu, dtype=x.dtype)
        return y / np.linalg.norm(y, axis=-1, keepdims=True)
    return torch.nn.functional.normalize(x - mu, dim=-1)
