"""Split-conformal bounds (:mod:`d4g_edge.trust`): the finite-sample quantile behind every
promised radius, and the heading-error fit behind ``heading_sigma_deg``.

A heading searched by :class:`d4g_edge.Localizer` is promised per bin of the ``lead_heading``
feature (the best heading's score lead over the best one at least 90 degrees away): the
split-conformal ``coverage`` quantile of the absolute heading error of right answers (within
25 m) in that bin (:class:`HeadingFit`), reported as a 1-sigma, the bound divided by the
normal quantile of ``coverage`` (:func:`sigma_of_bound`: 1.96 at 0.95).

Usage::

    from d4g_edge.conformal import conformal_quantile, fit_heading, sigma_of_bound
    fit = fit_heading(lead, abs_error_deg, coverage=0.95)
    sigma = sigma_of_bound(fit.bound(lead_of_query), 0.95)
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

HEADING_BIN_ROWS = 40  # right answers per bin of the heading-error fit, at least
MAX_HEADING_BINS = 6


def conformal_quantile(errors: np.ndarray, coverage: float) -> float:
    """The split-conformal ``coverage`` quantile: the ceil((n + 1) coverage)-th smallest
    error, infinite when there are too few (the radius then cannot be promised)."""
    e = np.sort(np.asarray(errors, np.float64))
    rank = int(np.ceil((len(e) + 1) * coverage))
    return float(e[rank - 1]) if 1 <= rank <= len(e) else float("inf")


@dataclass(frozen=True)
class HeadingFit:
    """The heading error of right answers, per bin of ``lead_heading`` (one kind of query)."""

    bin_edges: tuple[float, ...]  # of lead_heading, ascending, first 0
    bound_deg: tuple[float, ...]  # the coverage quantile of |heading error| per bin (<= 180)
    rows: int

    def bound(self, lead: float) -> float:
        b = int(np.searchsorted(np.asarray(self.bin_edges), lead, "right")) - 1
        return float(self.bound_deg[min(max(b, 0), len(self.bound_deg) - 1)])


def fit_heading(lead: np.ndarray, error_deg: np.ndarray, coverage: float) -> HeadingFit | None:
    """:class:`HeadingFit` of right answers' ``lead_heading`` and absolute heading error
    (degrees), or None with fewer than 20 rows. Bins are quantiles of the lead holding
    :data:`HEADING_BIN_ROWS` rows each (at most :data:`MAX_HEADING_BINS`)."""
    lead, err = np.asarray(lead, np.float64), np.abs(np.asarray(error_deg, np.float64))
    if len(lead) < 20:
        return None
    bins = int(np.clip(len(lead) // HEADING_BIN_ROWS, 1, MAX_HEADING_BINS))
    edges = np.unique(np.quantile(lead, np.linspace(0, 1, bins + 1)[:-1]))
    edges[0] = 0.0
    b = np.clip(np.searchsorted(edges, lead, "right") - 1, 0, None)
    bounds = np.array([conformal_quantile(err[b == i], coverage) for i in range(len(edges))])
    # a clearer best heading never gets a wider bound; no bound beyond a half turn
    bounds = np.maximum.accumulate(np.minimum(bounds, 180.0)[::-1])[::-1]
    return HeadingFit(tuple(float(e) for e in edges), tuple(float(v) for v in bounds), len(lead))


def normal_quantile(coverage: float) -> float:
    """``z`` of a two-sided normal interval holding ``coverage`` (1.96 at 0.95)."""
    return NormalDist().inv_cdf(0.5 + float(coverage) / 2.0)


def sigma_of_bound(bound_deg: float, coverage: float) -> float:
    """The 1-sigma whose two-sided normal ``coverage`` interval is ``bound_deg`` wide on each
    side (``bound / 1.96`` at 0.95)."""
    return float(bound_deg) / normal_quantile(coverage)
