"""d4g_edge: on-device cross-view geo-localization SDK.

The device install is torch-free: this package imports only numpy, pillow, hnswlib and
onnxruntime (the last two lazily where possible). Training, quantization and export live in
the repository's ``train``, ``quantize`` and ``export`` tooling.
"""

from d4g_edge._log import logger
from d4g_edge.geo import GeoReference, haversine_m

__version__ = "0.1.0"

__all__ = ["GeoReference", "__version__", "haversine_m", "logger"]
