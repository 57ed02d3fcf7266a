"""Repository tooling above the training, quantization and export layers: it may import
``train``, ``quantize``, ``export`` and ``d4g_edge``, and nothing imports it.

* :mod:`tools.build_index` — ``python -m tools.build_index``: a bundle from a dataset layout,
  the procedural world or a tile source (``--dask`` for a cluster);
* :mod:`tools.default_bundle` — ``python -m tools.default_bundle``: rebuilds the bundled
  default ``d4g_edge/_default`` from the committed students;
* :mod:`tools.release` — ``python -m tools.release``: a training checkpoint as a release
  (fp16 weights + sidecar).
"""
