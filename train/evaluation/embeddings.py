"""The embeddings file of ``python -m train.evaluate --embeddings`` and its scoring mode.

Format (``np.load(allow_pickle=False)``-safe ``.npz``): ``query`` (Q x D) and ``reference``
(R x D) float32 L2-normalised, ``query_ids`` (Q,) and ``reference_ids`` (R,) int64 where
query ``i``'s true reference has id ``query_ids[i]``; optional ``query_latlon`` (Q x 2) and
``reference_latlon`` (R x 2) float64 degrees, ``semi_positive_ids`` (Q x S) int64 (VIGOR).
Written by ``--save-embeddings``, :func:`save_embeddings` or any tool following the format.

numpy only: scoring a file needs no model and no torch.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from d4g_edge.fileio import atomic_write
from d4g_edge.log import logger
from train.metrics import DEFAULT_KS, RetrievalMetrics, evaluate_retrieval

__all__ = [
    "OPTIONAL",
    "REQUIRED",
    "EmbeddingSet",
    "EmbeddingsFormatError",
    "evaluate_embeddings",
    "load_embeddings",
    "save_embeddings",
]

REQUIRED = ("query", "reference", "query_ids", "reference_ids")
OPTIONAL = ("query_latlon", "reference_latlon", "semi_positive_ids")
_NORM_TOL = 1e-3  # |norm - 1| allowed in a file that promises L2-normalised vectors


class EmbeddingsFormatError(ValueError):
    """An embeddings file (or arrays about to be saved) does not follow the format."""

    def __init__(self, source: str | Path, problem: str) -> None:
        self.source = source
        super().__init__(f"{source}: {problem}")


@dataclass(frozen=True)
class EmbeddingSet:
    """Validated arrays of one embeddings file (the format: this module's docstring)."""

    query: np.ndarray
    reference: np.ndarray
    query_ids: np.ndarray
    reference_ids: np.ndarray
    query_latlon: np.ndarray | None = None
    reference_latlon: np.ndarray | None = None
    semi_positive_ids: np.ndarray | None = None

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], source: str | Path = "<arrays>"):
        """Check shapes, dtypes and normalisation; cast to the file's dtypes."""
        missing = [k for k in REQUIRED if arrays.get(k) is None]
        if missing:
            raise EmbeddingsFormatError(
                source, f"missing arrays {missing}; found {sorted(arrays)}; need {list(REQUIRED)}"
            )
        out: dict[str, np.ndarray | None] = {}
        for name in REQUIRED + OPTIONAL:
            value = arrays.get(name)
            out[name] = None if value is None else np.asarray(value)
        q, r = out["query"], out["reference"]
        for name, x in (("query", q), ("reference", r)):
            if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating) or len(x) == 0:
                raise EmbeddingsFormatError(
                    source, f"{name} must be a non-empty 2-D float array, got {x.shape} {x.dtype}"
                )
            if not np.isfinite(x).all():
                raise EmbeddingsFormatError(source, f"{name} contains NaN or inf")
            norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
            if np.abs(norms - 1.0).max() > _NORM_TOL:
                raise EmbeddingsFormatError(
                    source,
                    f"{name} rows must be L2-normalised (norms {norms.min():.4g}.."
                    f"{norms.max():.4g}); normalise before saving (F.normalize(x, dim=-1))",
                )
        if q.shape[1] != r.shape[1]:
            raise EmbeddingsFormatError(
                source, f"query dim {q.shape[1]} != reference dim {r.shape[1]}"
            )
        shapes = {
            "query_ids": (len(q),),
            "reference_ids": (len(r),),
            "query_latlon": (len(q), 2),
            "reference_latlon": (len(r), 2),
        }
        for name, shape in shapes.items():
            x = out[name]
            if x is not None and x.shape != shape:
                raise EmbeddingsFormatError(
                    source, f"{name} must have shape {shape}, got {x.shape}"
                )
        semi = out["semi_positive_ids"]
        if semi is not None and (semi.ndim != 2 or len(semi) != len(q)):
            raise EmbeddingsFormatError(
                source, f"semi_positive_ids must have shape ({len(q)}, S), got {semi.shape}"
            )
        for name in ("query_ids", "reference_ids", "semi_positive_ids"):
            x = out[name]
            if x is not None and not np.issubdtype(x.dtype, np.integer):
                raise EmbeddingsFormatError(source, f"{name} must be integers, got {x.dtype}")
        return cls(
            query=q.astype(np.float32, copy=False),
            reference=r.astype(np.float32, copy=False),
            query_ids=out["query_ids"].astype(np.int64, copy=False),
            reference_ids=out["reference_ids"].astype(np.int64, copy=False),
            query_latlon=_cast(out["query_latlon"], np.float64),
            reference_latlon=_cast(out["reference_latlon"], np.float64),
            semi_positive_ids=_cast(semi, np.int64),
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The non-empty fields, as saved in the file."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }


def _cast(x: np.ndarray | None, dtype) -> np.ndarray | None:
    return None if x is None else x.astype(dtype, copy=False)


def save_embeddings(
    path: str | Path, query, reference, query_ids, reference_ids, **optional
) -> Path:
    """Validate and write an embeddings file atomically (temp file + rename); returns the path.

    ``optional``: ``query_latlon``, ``reference_latlon``, ``semi_positive_ids``.
    """
    unknown = sorted(set(optional) - set(OPTIONAL))
    if unknown:
        raise TypeError(f"unknown arrays {unknown}; optional ones are {list(OPTIONAL)}")
    path = Path(path)
    data = EmbeddingSet.from_arrays(
        dict(query=query, reference=reference, query_ids=query_ids, reference_ids=reference_ids)
        | optional,
        source=path,
    )
    buffer = io.BytesIO()  # a file object, so numpy does not append ".npz"
    np.savez(buffer, **data.arrays())
    return atomic_write(path, buffer.getvalue())


def load_embeddings(path: str | Path) -> EmbeddingSet:
    """Read and validate an embeddings file; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"embeddings file {path} does not exist (write one with "
            "--save-embeddings or train.evaluate.save_embeddings)"
        )
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # np.load would otherwise try .npy or pickle on it
        raise EmbeddingsFormatError(path, "not a readable .npz archive (no zip header)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise EmbeddingsFormatError(path, f"not a readable .npz archive ({e})") from e
    except ValueError as e:  # object arrays need pickle, which is refused for safety
        raise EmbeddingsFormatError(
            path, f"holds pickled object arrays, which are not loaded ({e}); save plain arrays"
        ) from e
    extra = sorted(set(arrays) - set(REQUIRED) - set(OPTIONAL))
    if extra:
        logger.warning("%s: ignoring unknown arrays %s", path, extra)
    return EmbeddingSet.from_arrays(arrays, source=path)


def evaluate_embeddings(
    source: str | Path | EmbeddingSet, *, ks: tuple[int, ...] = DEFAULT_KS, chunk: int | None = None
) -> RetrievalMetrics:
    """Metrics of an embeddings file (or an already loaded :class:`EmbeddingSet`)."""
    data = source if isinstance(source, EmbeddingSet) else load_embeddings(source)
    return evaluate_retrieval(
        data.query,
        data.reference,
        data.query_ids,
        data.reference_ids,
        semi_positive_ids=data.semi_positive_ids,
        query_latlon=data.query_latlon,
        reference_latlon=data.reference_latlon,
        ks=ks,
        chunk=chunk,
        progress=partial(tqdm, desc="ranking", unit="chunk", leave=False),
    )
