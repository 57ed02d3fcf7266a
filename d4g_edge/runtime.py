"""Encoder runtimes: an exported ground or satellite encoder -> L2-normalised embeddings.

Both runtimes read the :class:`~d4g_edge.config.EncoderConfig` the exporter embedded in the
artifact (ONNX ``metadata_props`` key ``d4g_edge.encoder_config``; ExecuTorch: the
``<file>.json`` sidecar), preprocess with :func:`d4g_edge.preprocess.preprocess` from that
config, and return float32 ``(N, D)`` unit vectors. ``onnxruntime`` is the default;
ExecuTorch (which needs torch to hand tensors over) is imported only when chosen.

Usage::

    from d4g_edge.runtime import open_encoder
    enc = open_encoder("ground_int8.onnx", threads=2)   # or a .pte (ExecuTorch)
    enc.config.view, enc.config.embed_dim
    z = enc.embed([rgb1, rgb2])                          # (2, D) float32, unit norm
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from d4g_edge.config import METADATA_KEY, ConfigError, EncoderConfig
from d4g_edge.errors import EncoderError
from d4g_edge.fileio import sha256_file
from d4g_edge.image import ImageInput, load_rgb
from d4g_edge.log import logger
from d4g_edge.preprocess import preprocess

BACKENDS = ("onnxruntime", "executorch")
_SUFFIX_BACKEND = {".onnx": "onnxruntime", ".pte": "executorch"}


def parse_config(text: str | bytes, source: str) -> EncoderConfig:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise EncoderError(f"{source}: the embedded encoder config is not JSON ({err})") from None
    try:
        return EncoderConfig.from_dict(data, source=source)
    except ConfigError as err:
        raise EncoderError(str(err)) from None


def l2_normalize(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float32)
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


class Encoder:
    """Common part of the runtimes: config, preprocessing, batching, normalisation."""

    backend = ""

    def __init__(self, path: Path, config: EncoderConfig) -> None:
        self.path = path
        self.config = config
        self._sha256: str | None = None

    @property
    def view(self) -> str:
        return self.config.view

    @property
    def sha256(self) -> str:
        """SHA-256 of the artifact file (computed once)."""
        if self._sha256 is None:
            self._sha256 = sha256_file(self.path)
        return self._sha256

    @property
    def input_shape(self) -> tuple[int, int]:
        return self.config.input().tensor_shape

    def preprocess(self, image: ImageInput) -> np.ndarray:
        """One image -> float32 ``(1, 3, H, W)`` input of this encoder."""
        return preprocess(load_rgb(image), self.config)

    def embed(self, images: Sequence[ImageInput], batch_size: int = 32) -> np.ndarray:
        """Images -> float32 ``(N, D)`` L2-normalised embeddings."""
        if not len(images):
            return np.zeros((0, self.config.embed_dim), np.float32)
        out = []
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            out.append(self.embed_tensor(np.concatenate([self.preprocess(i) for i in chunk])))
        return np.concatenate(out)

    def embed_tensor(self, x: np.ndarray) -> np.ndarray:
        """Preprocessed float32 ``(N, 3, H, W)`` -> float32 ``(N, D)`` unit vectors."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != self.input_shape:
            raise EncoderError(
                f"{self.path.name} takes (N, 3, {self.input_shape[0]}, {self.input_shape[1]}) "
                f"float32, got {x.shape}; preprocess images with encoder.preprocess()"
            )
        z = self._run(x)
        if z.shape != (x.shape[0], self.config.embed_dim):
            raise EncoderError(
                f"{self.path.name} returned shape {z.shape}, expected "
                f"({x.shape[0]}, {self.config.embed_dim}) per its config"
            )
        return l2_normalize(z)

    def _run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        c = self.config
        return f"{type(self).__name__}({self.path.name}: {c.model_id} {c.view} {c.quantization})"


class OnnxEncoder(Encoder):
    """An ONNX artifact run by onnxruntime (thread-safe: ``InferenceSession.run`` is)."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise EncoderError(f"ONNX model {path} does not exist")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise EncoderError(f"onnxruntime cannot load {path}: {err}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise EncoderError(
                f"{path} carries no '{METADATA_KEY}' metadata; export it with python -m "
                "export.onnx, which embeds the encoder config"
            )
        super().__init__(path, parse_config(meta[METADATA_KEY], f"{path} metadata"))
        inputs = self.session.get_inputs()
        self._input = inputs[0].name
        shape = inputs[0].shape
        if len(shape) != 4 or [d for d in shape[2:] if isinstance(d, int)] not in (
            list(self.input_shape),
            [],
        ):
            raise EncoderError(
                f"{path} takes input {shape}, but its config says (N, 3, {self.input_shape})"
            )
        self._static_batch = shape[0] if isinstance(shape[0], int) else None

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self._static_batch is not None and x.shape[0] != self._static_batch:
            # a fixed-batch export: run one item at a time
            return np.concatenate([self._run(x[i : i + 1]) for i in range(x.shape[0])])
        return self.session.run(None, {self._input: x})[0]


# ExecuTorch runs XNNPACK (and its optimized kernels) on ONE thread pool per process, which
# torch.set_num_threads does not reach. Resizing it replaces the pool, and an XNNPACK delegate
# keeps the pool it was loaded with, so every ExecuTorch call of the SDK holds this lock, and a
# program loaded before the latest resize is reloaded before it runs (see _pool_generation).
_EXECUTORCH_LOCK = threading.Lock()
_pool_generation = 0  # bumped by each resize


def set_executorch_threads(threads: int) -> None:
    """Size ExecuTorch's process-wide thread pool (the one XNNPACK runs on) to ``threads``.

    ``executorch.runtime`` (1.5) has no thread setting; its pybindings' experimental
    ``_unsafe_reset_threadpool`` is the one way. It is unsafe because it replaces the pool
    under whatever holds it: here it runs under the lock every ExecuTorch call of the SDK
    takes, only when the size changes, and the SDK's encoders loaded on the old pool reload
    their program before they next run. The last size set wins for the whole process.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise EncoderError(f"threads must be a whole number >= 1, got {threads!r}")
    try:
        from executorch.extension.pybindings import portable_lib
    except ImportError as err:
        raise EncoderError(f"sizing ExecuTorch's thread pool needs executorch ({err})") from None
    global _pool_generation
    with _EXECUTORCH_LOCK:
        if portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(threads)
            _pool_generation += 1


class ExecuTorchEncoder(Encoder):
    """A ``.pte`` program run by the ExecuTorch runtime (imports torch; every ExecuTorch call
    of the process is serialised by one lock, as they share one thread pool anyway).

    ``threads`` sizes ExecuTorch's thread pool (:func:`set_executorch_threads`), which is
    process-wide: the last encoder opened with ``threads`` sets it for all of them."""

    backend = "executorch"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        path = Path(path)
        sidecar = path.with_name(path.name + ".json")
        if not path.is_file():
            raise EncoderError(f"ExecuTorch program {path} does not exist")
        if not sidecar.is_file():
            raise EncoderError(
                f"{sidecar} (the encoder config sidecar of {path.name}) is missing; export with "
                "python -m export.executorch, which writes it"
            )
        super().__init__(path, parse_config(sidecar.read_bytes(), str(sidecar)))
        try:
            import torch
            from executorch.runtime import Runtime
        except ImportError as err:
            raise EncoderError(
                f"backend 'executorch' needs the executorch runtime ({err}); pip install "
                "executorch, or use backend='onnxruntime' with a .onnx artifact"
            ) from None
        if threads:
            set_executorch_threads(int(threads))  # before loading: the delegate keeps the pool
        self._torch, self._runtime = torch, Runtime.get()
        with _EXECUTORCH_LOCK:  # no resize between loading and noting the pool's generation
            self._load()
        self._per_item = False

    def _load(self) -> None:
        """(Re)load the program on the current thread pool (called holding the lock)."""
        try:
            self._method = self._runtime.load_program(self.path).load_method("forward")
        except Exception as err:
            raise EncoderError(f"ExecuTorch cannot load {self.path}: {err}") from None
        self._generation = _pool_generation

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self._per_item and x.shape[0] > 1:
            return np.concatenate([self._run(x[i : i + 1]) for i in range(x.shape[0])])
        try:
            with _EXECUTORCH_LOCK:  # an ExecuTorch Method is not re-entrant
                if self._generation != _pool_generation:  # resized since: its pool is gone
                    self._load()
                out = self._method.execute([self._torch.from_numpy(x)])
        except EncoderError:
            raise
        except Exception as err:
            if x.shape[0] == 1:
                raise EncoderError(f"ExecuTorch failed to run {self.path.name}: {err}") from None
            # a static-batch program (ExecuTorch exports usually are): one image at a time
            logger.info("%s has a fixed batch size; running one image at a time", self.path)
            self._per_item = True
            return self._run(x)  # outside the (non-reentrant) lock
        return out[0].detach().numpy() if hasattr(out[0], "detach") else np.asarray(out[0])


def open_encoder(
    path: str | Path, backend: str | None = None, threads: int | None = None
) -> Encoder:
    """Open an artifact with ``backend`` (default: from the suffix, ``.onnx`` / ``.pte``)."""
    path = Path(path)
    implied = _SUFFIX_BACKEND.get(path.suffix.lower())
    if backend is None:
        if implied is None:
            raise EncoderError(
                f"cannot tell the runtime of {path} from its suffix; expected .onnx "
                "(onnxruntime) or .pte (executorch)"
            )
        backend = implied
    elif implied is not None and backend in BACKENDS and implied != backend:
        # else the runtime's own parser fails on the other format ("Protobuf parsing failed")
        raise EncoderError(
            f"{path} is a{'n ONNX model' if implied == 'onnxruntime' else 'n ExecuTorch program'}"
            f"; backend {backend!r} cannot run it: pass backend={implied!r}, or leave the "
            "backend out to take it from the suffix"
        )
    if backend == "onnxruntime":
        return OnnxEncoder(path, threads)
    if backend == "executorch":
        return ExecuTorchEncoder(path, threads)
    raise EncoderError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
