"""Index building: satellite tiles embedded into a bundle (the build side of the SDK).

Torch-free like the runtime core, but never imported by it: a device that only localizes
needs none of this.

* :mod:`~d4g_edge.build.builder` — ``build_index``: tiles -> embeddings -> bundle (resumable,
  sharded);
* :mod:`~d4g_edge.build.parts` — a build's work folder (state and parts, for ``resume``);
* :mod:`~d4g_edge.build.shards` — shard files and ``merge_shards``;
* :mod:`~d4g_edge.build.tiles` — tile sources (XYZ folders, world-file and GeoTIFF rasters);
* :mod:`~d4g_edge.build.calibrate` — fits a bundle's answer calibration (``trust.json``).

Usage::

    from d4g_edge.build.builder import build_index
    from d4g_edge.build.tiles import open_tile_source
    build_index(open_tile_source("tiles/"), "satellite.onnx", "bundles/town", ground="g.onnx")
"""
