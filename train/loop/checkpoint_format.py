"""The checkpoint sidecar's format name and error type, on their own so that the writer
(:mod:`train.loop.checkpoint`) and the converter of old sidecars (:mod:`train.loop.legacy`)
both import them without importing each other.

Usage::

    from train.loop.checkpoint_format import CHECKPOINT_FORMAT, CheckpointError
"""

from __future__ import annotations

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError"]

CHECKPOINT_FORMAT = "d4g-edge/checkpoint/2"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked; the message says what is wrong and the fix."""
