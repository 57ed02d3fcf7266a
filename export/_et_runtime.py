"""The ExecuTorch side of ``export.executorch``: what stayed outside XNNPACK, running a
``.pte`` in ``executorch.runtime`` and reading its embedded config. (Verification is
``export/_verify.py``'s, timing ``export.bench``'s, as for every format.)

Usage::

    counts = undelegated_ops(edge_manager)          # {"aten.native_layer_norm.default": 19}
    pte = PteModel(path, threads=1)
    emb = pte(x)                                    # numpy (N, D), N <= the exported max batch
    cfg_text = pte.constant("encoder_config")
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import torch

__all__ = ["PteModel", "delegate_calls", "undelegated_ops"]

_NOT_OPS = {"executorch_call_delegate", "getitem"}


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

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
        from executorch.runtime import Runtime

        # XNNPACK's thread pool is process-wide; 1 thread is the device-like measurement.
        if threads:
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
