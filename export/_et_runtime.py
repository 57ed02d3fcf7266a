"""The ExecuTorch side of ``export.executorch``: what stayed outside XNNPACK, running a
``.pte`` in ``executorch.runtime``, reading its embedded config, timing it, and the checks
an artifact must pass (private; the shared ``export/_verify.py`` takes over the checks at
merge).

Usage::

    counts = undelegated_ops(edge_manager)          # {"aten.native_layer_norm.default": 19}
    pte = PteModel(path, threads=1)
    emb = pte(x)                                    # numpy (N, D)
    cfg_text = pte.constant("encoder_config")
    p50_ms = pte.latency_ms(x[:1], runs=50)["p50_ms"]
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["PteModel", "VerificationError", "check_float", "check_int8", "undelegated_ops"]

_NOT_OPS = {"executorch_call_delegate", "getitem"}


class VerificationError(RuntimeError):
    """An artifact whose outputs do not match eager; it is deleted, never left behind."""


def undelegated_ops(edge_manager) -> dict[str, int]:
    """Operator -> count of the nodes the XNNPACK delegate did not take (run by the portable
    CPU kernels instead), most frequent first."""
    graph = edge_manager.exported_program().graph_module.graph
    counts = collections.Counter(
        getattr(n.target, "__name__", str(n.target)) for n in graph.nodes if n.op == "call_function"
    )
    return {k: v for k, v in counts.most_common() if k not in _NOT_OPS}


def delegate_calls(edge_manager) -> int:
    graph = edge_manager.exported_program().graph_module.graph
    return sum(
        1
        for n in graph.nodes
        if n.op == "call_function"
        and getattr(n.target, "__name__", "") == "executorch_call_delegate"
    )


class PteModel:
    """A ``.pte`` loaded by ``executorch.runtime``: ``model(x)`` runs ``forward``."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
        from executorch.runtime import Runtime

        # XNNPACK's thread pool is process-wide; 1 thread is the device-like measurement.
        _unsafe_reset_threadpool(threads)
        self.program = Runtime.get().load_program(Path(path))
        self._forward = self.program.load_method("forward")

    def __call__(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        out = self._forward.execute([torch.as_tensor(x, dtype=torch.float32).contiguous()])
        return out[0].numpy()

    def constant(self, name: str):
        """The value a constant method returns (strings come back as ``str``)."""
        if name not in self.program.method_names:
            raise KeyError(
                f"no method {name!r}; the program has {sorted(self.program.method_names)}"
            )
        return self.program.load_method(name).execute([])[0]

    def latency_ms(self, x: torch.Tensor, runs: int = 50, warmup: int = 5) -> dict[str, float]:
        """p50/p90 wall time of one ``forward`` on ``x`` over ``runs`` runs."""
        x = torch.as_tensor(x, dtype=torch.float32).contiguous()
        for _ in range(warmup):
            self._forward.execute([x])
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            self._forward.execute([x])
            times.append((time.perf_counter() - t0) * 1e3)
        return {
            "p50_ms": float(np.percentile(times, 50)),
            "p90_ms": float(np.percentile(times, 90)),
        }


@dataclass(frozen=True)
class Agreement:
    """How an artifact's embeddings compare with eager's on the same images."""

    min_cos: float
    mean_cos: float
    top1: float  # fraction whose nearest eager embedding is their own image's

    def to_dict(self) -> dict[str, float]:
        return {"min_cos": self.min_cos, "mean_cos": self.mean_cos, "top1_agreement": self.top1}


def agreement(artifact: np.ndarray, eager: np.ndarray) -> Agreement:
    a = artifact / np.linalg.norm(artifact, axis=1, keepdims=True)
    e = eager / np.linalg.norm(eager, axis=1, keepdims=True)
    cos = np.sum(a * e, axis=1)
    top1 = float(np.mean(np.argmax(a @ e.T, axis=1) == np.arange(len(a))))
    return Agreement(float(cos.min()), float(cos.mean()), top1)


def _fail(what: str, artifact: np.ndarray, eager: np.ndarray, got: Agreement) -> None:
    raise VerificationError(
        f"{what}: {got.to_dict()}; first values artifact {np.round(artifact[0, :5], 4).tolist()}"
        f" vs eager {np.round(eager[0, :5], 4).tolist()}"
    )


def check_float(artifact: np.ndarray, eager: np.ndarray, min_cos: float = 0.999) -> Agreement:
    """A float artifact must reproduce eager: every cosine >= ``min_cos``."""
    got = agreement(artifact, eager)
    if not got.min_cos >= min_cos:
        _fail(
            f"float artifact differs from eager (min cosine must be >= {min_cos})",
            artifact,
            eager,
            got,
        )
    return got


def check_int8(
    artifact: np.ndarray, eager: np.ndarray, min_mean_cos: float = 0.95, min_top1: float = 0.9
) -> Agreement:
    """An int8 artifact must keep the retrieval: each image's nearest fp32 embedding is its
    own for >= ``min_top1`` of them, and the mean cosine to fp32 is >= ``min_mean_cos``."""
    got = agreement(artifact, eager)
    if not (got.mean_cos >= min_mean_cos and got.top1 >= min_top1):
        _fail(
            f"int8 artifact drifted from fp32 (needs mean cosine >= {min_mean_cos}, top-1 "
            f"agreement >= {min_top1})",
            artifact,
            eager,
            got,
        )
    return got
