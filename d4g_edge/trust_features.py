"""One query's trust features and the degenerate-image rules (:mod:`d4g_edge.trust`).

What :mod:`d4g_edge.calibration` judges and :mod:`d4g_edge.trust_fit` fits on: the
:data:`FEATURES` of a retrieval (:func:`features`), why an image cannot show a place
(:func:`image_problem`), and the names shared by both (query groups, the 25 m radius).
"""

from __future__ import annotations

import numpy as np

TRUST_K = 32  # rows (one per tile) behind every answer's features, whatever top_k asks
WITHIN_M = 25.0  # the "right answer" radius of p_within_25m (the field's within-25 m rate)
STATUSES = ("ok", "uncertain", "not_in_map")
# kinds of query fitted apart (Mondrian conformal prediction): each keeps its own promise
GROUPS = ("heading_known", "heading_unknown", "prior")  # panoramas; every calibration has them
PHOTO_PREFIX = "photo_"
PHOTO_GROUPS = tuple(PHOTO_PREFIX + g for g in GROUPS)  # photos, in calibrations fitted since
HEADING_KINDS = ("panorama", "photo")  # heading-error fits
FEATURES = (
    "score",
    "lead_2",
    "lead_k",
    "lead_far",
    "spread_m",
    "lead_heading",
    "heading_known",
)
# degenerate images (image_problem): thresholds on 8-bit values, documented in docs/trust.md
MIN_SIDE_PX = 16
MAX_ASPECT = 16.0
MIN_STD = 2.0  # luminance standard deviation of a constant (or nearly) frame
MIN_NEIGHBOUR_CORR = 0.25  # adjacent-pixel correlation: natural images > 0.6, i.i.d. noise ~0


def image_problem(rgb: np.ndarray) -> str | None:
    """Why an (H, W, 3) uint8 image cannot be a photo of a place, or None."""
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE_PX:
        return f"image is {w}x{h} px, below {MIN_SIDE_PX} px on a side"
    if max(h, w) / min(h, w) > MAX_ASPECT:
        return f"image aspect ratio {w}:{h} is beyond 1:{MAX_ASPECT:.0f}"
    # a strided view of ~16k pixels: enough for both statistics, O(1) on any image size
    # (it runs on every query: the localize() fast path)
    step = max(1, int(np.sqrt(h * w / 16_384)))
    y = _every(rgb, step).astype(np.float32) @ _LUMA
    std = float(y.std())
    if std < MIN_STD:
        return f"image is constant (luminance std {std:.2f} < {MIN_STD})"
    a, b = y[:, :-1].ravel(), y[:, 1:].ravel()  # copies: centred in place
    a -= a.mean()
    b -= b.mean()
    denom = float(np.sqrt((a @ a) * (b @ b)))
    corr = float(a @ b) / denom if denom > 0 else 0.0
    if not np.isfinite(corr) or corr < MIN_NEIGHBOUR_CORR:
        return f"image looks like noise (adjacent-pixel correlation {corr:.2f})"
    return None


_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_PIXEL = np.dtype((np.void, 3))  # one RGB pixel as a single 3-byte item


def _every(rgb: np.ndarray, step: int) -> np.ndarray:
    """``rgb[::step, ::step]``, C-contiguous when ``step`` > 1: a C-contiguous image is
    gathered as whole 3-byte pixels (about twice as fast as byte by byte, then the float
    cast runs on contiguous bytes); the same bytes either way."""
    if step == 1 or not rgb.flags.c_contiguous:
        return rgb[::step, ::step]
    pixels = rgb.view(_PIXEL)[..., 0]  # (H, W)
    return np.ascontiguousarray(pixels[::step, ::step])[..., None].view(np.uint8)


def features(
    scores: np.ndarray,
    dist_m: np.ndarray,
    far_m: float,
    heading_scores: np.ndarray | None = None,
    heading_step_deg: float = 45.0,
    spread_temperature: float = 0.02,
) -> np.ndarray:
    """The :data:`FEATURES` of one query: ``scores`` of its top rows (one per tile, best
    first, at least 2), ``dist_m`` of each from the best, ``heading_scores`` the best score
    of each searched heading (None when the heading was given)."""
    s = np.asarray(scores, np.float64)
    d = np.asarray(dist_m, np.float64)
    k = min(len(s), TRUST_K)
    s, d = s[:k], d[:k]
    far = s[d > far_m]
    lead_far = s[0] - (far[0] if far.size else s[-1])
    w = np.exp((s - s[0]) / spread_temperature)
    spread = float(np.sqrt((w * d**2).sum() / w.sum()))
    if heading_scores is None or len(heading_scores) < 2:
        lead_heading, known = 0.0, 1.0
    else:
        hs = np.asarray(heading_scores, np.float64)
        best = int(np.argmax(hs))
        steps = np.abs((np.arange(len(hs)) - best + len(hs) // 2) % len(hs) - len(hs) // 2)
        away = hs[steps * heading_step_deg >= 90.0]
        lead_heading, known = float(hs[best] - (away.max() if away.size else hs.min())), 0.0
    lead_2 = s[0] - s[1] if k > 1 else 0.0
    return np.array([s[0], lead_2, s[0] - s[-1], lead_far, np.log1p(spread), lead_heading, known])
