"""One package logger for the whole project (hloc style).

Library code logs through ``logger``; only command-line entry points call
:func:`setup_logging`, so importing any module never configures logging globally.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("d4g_edge")


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is at each record (as the stdlib's last-resort handler
    does), not as it was when the handler was made: ``main()`` run in-process under
    ``contextlib.redirect_stderr`` or pytest's capture would otherwise keep writing to a
    closed stream, and logging prints "--- Logging error ---" with a traceback."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(level: int = logging.INFO) -> None:
    """Attach one stream handler to the package logger (idempotent); for ``__main__`` only."""
    if not any(getattr(h, "_d4g", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(
            logging.Formatter("[%(asctime)s %(name)s %(levelname)s] %(message)s", "%H:%M:%S")
        )
        handler._d4g = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
