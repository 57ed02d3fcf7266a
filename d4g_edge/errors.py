"""The typed errors of the SDK: one base class, one subclass per thing a user can get wrong.

Every error a user can cause (a bad image, a tampered bundle, a missing default) derives from
:class:`D4GEdgeError`, so an application catches one type and the CLI prints the message
without a traceback (exit status 2). Messages say what was expected, what came, and the fix.

Usage::

    from d4g_edge.errors import D4GEdgeError
    try:
        fix = d4g_edge.localize("frame.jpg")
    except D4GEdgeError as err:
        print(err)
"""

from __future__ import annotations


class D4GEdgeError(Exception):
    """Base class of every error the SDK raises for a user's input."""


class ImageError(D4GEdgeError, ValueError):
    """An image that cannot be read or converted to 8-bit RGB."""


class EncoderError(D4GEdgeError):
    """A model artifact that cannot be loaded or lacks its embedded encoder config."""


class BundleError(D4GEdgeError):
    """A bundle that is missing, malformed, or does not fit together."""


class BundleChecksumError(BundleError):
    """A bundle file whose SHA-256 differs from the manifest's (tampered or truncated)."""


class BundleSchemaError(BundleError):
    """A manifest of an unknown schema version or with missing/invalid fields."""


class BundleContentError(BundleError):
    """A bundle file whose contents are unusable although its checksum may match: an unreadable
    tile table, a latitude out of range, a NaN index vector, an index of another shape."""


class ModelMismatchError(BundleError):
    """Encoders that do not belong together (the query model vs the manifest, or vs the
    index's satellite model); the message names the fields that differ."""


class NoDefaultBundleError(BundleError):
    """No bundle was given and no default bundle is installed."""


class TileSourceError(D4GEdgeError):
    """Satellite tiles that cannot be read or georeferenced."""


class SearchError(D4GEdgeError, ValueError):
    """A search that cannot run as asked (e.g. no tile within the prior's radius)."""


class GeoError(D4GEdgeError, ValueError):
    """Coordinates or a georeference outside what is valid (latitude beyond the poles, a
    non-positive pixel size)."""


class IndexParamsError(D4GEdgeError, ValueError):
    """Index parameters outside what an index can be built or searched with."""
