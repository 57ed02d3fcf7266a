"""What the ``d4g-edge`` commands print: strict JSON and printable file names.

``--json`` output is strict JSON: a non-finite number is written as ``null``, never ``NaN``
(which no JSON parser but Python's accepts). A file name that is not valid UTF-8 (surrogate-
escaped in Python's str) is printed with its bad bytes escaped instead of crashing print().

Usage::

    print(dumps({"lat": float("nan")}))     # {"lat": null}
    print(printable(path))
"""

from __future__ import annotations

import json
import math
from pathlib import Path


def json_safe(value):
    """``value`` with every non-finite float as ``None``: JSON has no NaN or Infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype"):  # a numpy scalar
        return json_safe(value.item())
    return value


def dumps(value, **kwargs) -> str:
    """Strict JSON (``allow_nan=False`` after mapping NaN/inf to ``null``)."""
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)


def printable(path: Path | str) -> str:
    """``str(path)`` that print() cannot fail on: undecodable bytes escaped."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")
