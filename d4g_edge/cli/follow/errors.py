"""The errors of ``d4g-edge follow`` (each a :class:`~d4g_edge.errors.D4GEdgeError`: exit 2)."""

from __future__ import annotations

from d4g_edge.errors import D4GEdgeError


class FollowError(D4GEdgeError):
    """``follow`` cannot run as asked (a missing frame folder, bad flags, a bad camera)."""


class SidecarError(FollowError, ValueError):
    """An ``IMAGE.json`` sidecar, or one of its fields, that cannot be used."""


class MavlinkError(FollowError):
    """A ``--mavlink`` URL that is malformed, cannot be resolved, or cannot be opened."""
