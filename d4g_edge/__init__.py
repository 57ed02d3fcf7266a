"""d4g_edge: on-device cross-view geo-localization SDK.

The device install is torch-free: this package imports only numpy, pillow, hnswlib and
onnxruntime (the last two lazily). Training, quantization and export live in the repository's
``train``, ``quantize`` and ``export`` tooling.

Usage::

    import d4g_edge
    fix = d4g_edge.localize("pano.jpg", bundle="bundles/town")
    print(fix.lat, fix.lon, fix.uncertainty_m)
"""

from d4g_edge._version import __version__
from d4g_edge.errors import (
    BundleError,
    D4GEdgeError,
    EncoderError,
    ImageError,
    ModelMismatchError,
    NoDefaultBundleError,
    SearchError,
    TileSourceError,
)
from d4g_edge.geo import GeoReference, haversine_m
from d4g_edge.localizer import Candidate, Localization, Localizer, localize
from d4g_edge.log import logger

__all__ = [
    "BundleError",
    "Candidate",
    "D4GEdgeError",
    "EncoderError",
    "GeoReference",
    "ImageError",
    "Localization",
    "Localizer",
    "ModelMismatchError",
    "NoDefaultBundleError",
    "SearchError",
    "TileSourceError",
    "__version__",
    "haversine_m",
    "localize",
    "logger",
]
