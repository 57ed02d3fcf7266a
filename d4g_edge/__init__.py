"""d4g_edge: on-device cross-view geo-localization SDK.

The device install is torch-free: this package imports only numpy, pillow, hnswlib and
onnxruntime (the last two lazily). Training, quantization and export live in the repository's
``train``, ``quantize``, ``export`` and ``tools`` tooling.

Layers (each imports only the ones before it): the runtime core (this folder's modules), the
index build (:mod:`d4g_edge.build`) and the ``d4g-edge`` commands (:mod:`d4g_edge.cli`).
Tooling names stay in their modules: :class:`d4g_edge.geo.GeoReference`,
:data:`d4g_edge.log.logger`.

Usage::

    import d4g_edge
    fix = d4g_edge.localize("pano.jpg", bundle="bundles/town")
    print(fix.lat, fix.lon, fix.uncertainty_m)
"""

from d4g_edge._version import __version__
from d4g_edge.bundle import Bundle
from d4g_edge.drone import Flight
from d4g_edge.errors import (
    BundleChecksumError,
    BundleContentError,
    BundleError,
    BundleSchemaError,
    D4GEdgeError,
    EncoderError,
    GeoError,
    ImageError,
    IndexParamsError,
    ModelMismatchError,
    NoDefaultBundleError,
    SearchError,
    TileSourceError,
)
from d4g_edge.geo import haversine_m
from d4g_edge.localizer import Candidate, Localization, Localizer, localize
from d4g_edge.tracker import Tracker, TrackFix

__all__ = [
    "Bundle",
    "BundleChecksumError",
    "BundleContentError",
    "BundleError",
    "BundleSchemaError",
    "Candidate",
    "D4GEdgeError",
    "EncoderError",
    "Flight",
    "GeoError",
    "ImageError",
    "IndexParamsError",
    "Localization",
    "Localizer",
    "ModelMismatchError",
    "NoDefaultBundleError",
    "SearchError",
    "TileSourceError",
    "TrackFix",
    "Tracker",
    "__version__",
    "haversine_m",
    "localize",
]
