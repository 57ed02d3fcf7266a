"""One package logger for the whole project (hloc style).

Library code logs through ``logger``; only command-line entry points call
:func:`setup_logging`, so importing any module never configures logging globally.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("d4g_edge")


def setup_logging(level: int = logging.INFO) -> None:
    """Attach one stream handler to the package logger (idempotent); for ``__main__`` only."""
    if not any(getattr(h, "_d4g", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("[%(asctime)s %(name)s %(levelname)s] %(message)s", "%H:%M:%S")
        )
        handler._d4g = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
