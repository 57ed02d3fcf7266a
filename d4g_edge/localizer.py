"""A picture -> latitude/longitude: the bundle's query encoder + its satellite index.

``Localizer`` loads a bundle once (verified, see :mod:`d4g_edge.bundle`) and is safe to share
across threads (onnxruntime sessions and hnswlib queries are re-entrant; ExecuTorch calls are
serialised by the encoder). ``localize()`` is the one-call form on the default bundle.

Heading and phone photos (:mod:`d4g_edge.ground_query`). ``heading=h`` says where the
panorama's centre column (a photo's optical axis) looks, degrees clockwise from north; the
query is encoded north-up. ``heading=None`` (unknown) encodes ``N`` circular rolls in one
batch (:data:`DEFAULT_HEADINGS` for panoramas, :data:`PHOTO_HEADINGS` for photos;
``Localizer(headings=N)`` sets both), keeps the best roll's answer and refines its heading
below the ``360 / N`` step; ``heading_sigma_deg`` is the calibrated 1-sigma of that estimate
(:mod:`d4g_edge.trust`), None when the heading was given or the calibration has no heading
fit. For a ground bundle ``fov_deg`` is a phone photo's horizontal field of view: the photo
is placed into the encoder's panorama canvas; None reads it from EXIF, else the image is a
panorama; 360 is a panorama. The answer's ``fov_deg`` says which it was read as.

The query model. The bundle's ``models.query`` (``Bundle.query_path``) encodes what the device
sees: a ground panorama or, in a drone bundle, a camera frame. ``Localizer(query=PATH)`` uses
another file of the same model (e.g. another quantization); ``ground=`` is its old name.

One signature. ``localize`` / ``localize_batch`` / ``observe`` / ``retrieve`` / ``embed`` and
the module's ``localize`` take the same keywords with the same defaults: ``prior=None``,
``heading=None``, ``altitude_m=None``, ``pitch_deg=None``, ``fov_deg=None`` (the camera's
horizontal field of view; for a drone frame None means :data:`d4g_edge.drone.DEFAULT_FOV_DEG`).
``top_k`` is 5 where the answer is a position and 100 where the rows feed a tracker.

Drone frames. A bundle built with a drone student (``Bundle.views == ("drone",)``) takes
camera frames: ``heading`` is where the frame's top points, searched over quarter turns when
unknown; ``altitude_m`` (with the camera's ``fov_deg``) keeps the part of a high frame that
covers one tile; ``pitch_deg`` (from nadir) moves the answer from the point the frame's centre
shows back to the drone; the three are a :class:`d4g_edge.drone.Flight`. See
:mod:`d4g_edge.drone`.

Trust (:mod:`d4g_edge.trust`). Every answer carries ``status`` (``"ok"``, ``"uncertain"``,
``"not_in_map"``), ``p_within_25m`` and ``uncertainty_m``; :mod:`d4g_edge.results` says what
each promises, and why they do not depend on ``top_k``.

Usage::

    import d4g_edge
    fix = d4g_edge.localize("pano.jpg")                     # default bundle
    loc = d4g_edge.Localizer("bundles/town", threads=2)
    fix = loc.localize(img, top_k=5, prior=(40.001, -88.002, 300))
    fixes = loc.localize_batch([img1, img2])
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from d4g_edge import trust
from d4g_edge.bundle import Bundle
from d4g_edge.drone import Flight
from d4g_edge.errors import NoDefaultBundleError, SearchError
from d4g_edge.ground_query import (  # noqa: F401  (DEFAULT_HEADINGS ...: their public home)
    DEFAULT_HEADINGS,
    PHOTO_HEADINGS,
    heading_grid,
    refine_heading,
)
from d4g_edge.image import ImageInput
from d4g_edge.log import logger
from d4g_edge.queries import count, finite, flights_of, per_image, query_inputs
from d4g_edge.results import (  # noqa: F401  (Candidate: imported from here too)
    Candidate,
    Localization,
    Observation,
    observation,
)
from d4g_edge.retrieval import prior_rows, search_tiles
from d4g_edge.runtime import Encoder

BUNDLE_ENV = "D4G_EDGE_BUNDLE"
DEFAULT_BUNDLE = Path(__file__).resolve().parent / "_default"


def default_bundle_path() -> Path:
    """``$D4G_EDGE_BUNDLE``, else the bundle shipped in the package, else a typed error."""
    if os.environ.get(BUNDLE_ENV):
        return Path(os.environ[BUNDLE_ENV])
    if (DEFAULT_BUNDLE / "manifest.json").is_file():
        return DEFAULT_BUNDLE
    raise NoDefaultBundleError(
        f"no bundle given and no default bundle is installed (looked at ${BUNDLE_ENV} and "
        f"{DEFAULT_BUNDLE}). Build one with: d4g-edge build-index --tiles TILES --model "
        "satellite.onnx --ground ground.onnx --out my_bundle; then pass --bundle my_bundle "
        f"(or bundle=...), or set {BUNDLE_ENV}=my_bundle"
    )


class Localizer:
    """A bundle loaded once, and the query model that encodes the device's pictures.

    ``bundle``: a folder or a loaded :class:`Bundle` (None: :func:`default_bundle_path`);
    ``backend``: "onnxruntime" or "executorch", the bundle's ``.onnx`` or ``.pte`` query model
    (None: the ``.onnx``, or the runtime ``query``'s suffix names);
    ``query``: a query model file to use instead of the bundle's (it must be the same model,
    any quantization); ``ground``: the old name of ``query`` (deprecated); ``region``: of a
    cell-sharded bundle, load only the cells near (lat, lon, radius_m); ``headings``: rolls
    searched for an unknown heading, panoramas and photos alike (None:
    :data:`DEFAULT_HEADINGS` / :data:`PHOTO_HEADINGS`; a calibration is fitted at those).
    """

    def __init__(
        self,
        bundle: str | Path | Bundle | None = None,
        *,
        backend: str | None = None,
        threads: int | None = None,
        query: str | Path | None = None,
        verify: bool = True,
        temperature: float = 0.02,
        region: tuple[float, float, float] | None = None,
        ground: str | Path | None = None,
        headings: int | None = None,
    ) -> None:
        if ground is not None:
            if query is not None:
                raise SearchError("give the query model as query=, not also as ground=")
            warnings.warn(
                "Localizer(ground=...) is deprecated; the model is the query model: query=...",
                DeprecationWarning,
                stacklevel=2,
            )
            query = ground
        if not isinstance(bundle, Bundle):
            path = bundle if bundle is not None else default_bundle_path()
            # region: of a cell-sharded bundle, load only the cells near it (d4g_edge.cells)
            bundle = Bundle.load(path, verify=verify, region=region)
        self.bundle = bundle
        self.temperature = finite(temperature, "temperature", positive=True)
        self.headings = DEFAULT_HEADINGS if headings is None else count(headings, "headings")
        self.photo_headings = PHOTO_HEADINGS if headings is None else self.headings
        self.calibration = trust.Calibration.from_bundle(bundle)
        if self.calibration is None:
            logger.warning(
                "%s has no calibration: answers are 'uncertain' with an uncalibrated spread; "
                "fit one with d4g-edge calibrate %s --queries FOLDER",
                bundle.root,
                bundle.root,
            )
        # the checks live with the bundle, so `d4g-edge info` verifies exactly these
        if backend is None:  # the bundle's ONNX model, or what query='s suffix says
            backend = "onnxruntime" if query is None else None
        self.encoder: Encoder = bundle.open_query_encoder(backend, threads, path=query)
        self.view = self.encoder.config.view  # "ground" panoramas or "drone" frames

    # ---- queries ------------------------------------------------------------------------

    def _queries(
        self, image, heading, flight: Flight | None = None, fov=None, grid=None
    ) -> tuple[np.ndarray, np.ndarray, str | None, float | None]:
        """:func:`d4g_edge.queries.query_inputs` with this localizer's encoder and headings."""
        return query_inputs(
            image,
            heading,
            flight,
            fov,
            grid,
            config=self.encoder.config,
            headings=self.headings,
            photo_headings=self.photo_headings,
            tile_m=lambda: self._tile_m,
        )

    @cached_property
    def _tile_m(self) -> float:
        """Ground width of one tile of the bundle (median footprint)."""
        return float(np.nanmedian(self.bundle.tiles.footprint_m))

    def localize(
        self,
        image: ImageInput,
        *,
        top_k: int = 5,
        prior: tuple[float, float, float] | None = None,
        heading: float | None = None,
        altitude_m: float | None = None,
        pitch_deg: float | None = None,
        fov_deg: float | None = None,
    ) -> Localization:
        """Localize one image. Drone frames may come with the autopilot's ``altitude_m``
        above ground, camera ``pitch_deg`` from nadir and ``fov_deg`` (see the module
        docstring)."""
        return self.localize_batch(
            [image],
            top_k=top_k,
            prior=prior,
            heading=heading,
            altitude_m=altitude_m,
            pitch_deg=pitch_deg,
            fov_deg=fov_deg,
        )[0]

    def localize_batch(
        self,
        images: Sequence[ImageInput],
        *,
        top_k: int = 5,
        prior: tuple[float, float, float] | None = None,
        heading: float | Sequence[float | None] | None = None,
        altitude_m: float | Sequence[float | None] | None = None,
        pitch_deg: float | Sequence[float | None] | None = None,
        fov_deg: float | Sequence[float | None] | None = None,
    ) -> list[Localization]:
        """:meth:`localize` for several images in one encoder batch; each keyword is one value
        for all of them or a sequence with one per image."""
        return [
            obs.fix
            for obs in self._observe(images, top_k, prior, heading, altitude_m, pitch_deg, fov_deg)
        ]

    def observe(
        self,
        image: ImageInput,
        *,
        top_k: int = 100,
        prior: tuple[float, float, float] | None = None,
        heading: float | None = None,
        altitude_m: float | None = None,
        pitch_deg: float | None = None,
        fov_deg: float | None = None,
    ) -> Observation:
        """One encoding, two uses: the raw top-``top_k`` rows and scores for a tracker, and
        the single-frame answer with its status (a tracker skips ``not_in_map`` frames)."""
        return self._observe([image], top_k, prior, heading, altitude_m, pitch_deg, fov_deg)[0]

    def observe_priors(
        self,
        image: ImageInput,
        priors: Sequence[tuple[float, float, float] | None],
        *,
        top_k: int = 100,
        heading: float | None = None,
        altitude_m: float | None = None,
        pitch_deg: float | None = None,
        fov_deg: float | None = None,
    ) -> list[Observation]:
        """:meth:`observe` under each of ``priors`` (None: no prior), the image encoded once:
        a frame's answers with and without a position prior (the rows a calibration fits
        on) for one encoding, a heading search's 36 rolls included. A prior whose disc holds
        no tile raises :class:`SearchError` before anything is encoded."""
        obs = self._observe([image], top_k, None, heading, altitude_m, pitch_deg, fov_deg, priors)
        return [o[0] for o in obs]

    def _observe(self, images, top_k, prior, heading, altitude_m, pitch_deg, fov_deg, priors=None):
        """One observation per image under ``prior``; with ``priors``, a list of them under
        each prior, the images encoded once."""
        top_k = count(top_k, "top_k")
        n = len(images)
        if n == 0:  # an empty batch has empty answers (no encoder call on zero inputs)
            return [] if priors is None else [[] for _ in priors]
        headings = per_image(heading, n, "headings")
        fovs = per_image(fov_deg, n, "fields of view")
        ground = self.view != "drone"  # a ground photo's fov_deg is not a drone camera's
        flights = flights_of(n, altitude_m, pitch_deg, None if ground else fovs)
        todo = [prior] if priors is None else list(priors)
        cands = [prior_rows(self.bundle, p) for p in todo]  # a bad prior: before encoding
        batches = [
            self._queries(img, h, f, fov if ground else None)
            for img, h, f, fov in zip(images, headings, flights, fovs, strict=True)
        ]
        xs = [b[0] for b in batches]  # one image (the common call): no concatenated copy
        z = self.encoder.embed_tensor(xs[0] if len(xs) == 1 else np.concatenate(xs))
        outs, answering = [], self._answering
        for p, cand in zip(todo, cands, strict=True):
            # every roll's best score picks the heading; only the best roll's rows are kept
            ids, scores = self._search(z, max(top_k, trust.TRUST_K), cand)
            out, row = [], 0
            for (x, hs, problem, fov), h_in, flight in zip(batches, headings, flights, strict=True):
                r = slice(row, row + len(x))
                row += len(x)
                obs = observation(
                    ids[r], scores[r], hs, h_in, flight, problem, fov, p, top_k, **answering
                )
                out.append(obs)
            outs.append(out)
        return outs[0] if priors is None else outs

    @property
    def _answering(self) -> dict:
        """What :func:`d4g_edge.results.observation` reads of this localizer."""
        return {
            "tiles": self.bundle.tiles,
            "ground": self.view != "drone",
            "far_m": self._far_m,
            "calibration": self.calibration,
            "temperature": self.temperature,
            "grid_step_m": self._grid_step_m if self.calibration is None else 0.0,
        }

    def retrieve(
        self,
        image: ImageInput,
        *,
        top_k: int = 100,
        prior: tuple[float, float, float] | None = None,
        heading: float | None = None,
        altitude_m: float | None = None,
        pitch_deg: float | None = None,
        fov_deg: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Raw top-k tile rows and scores (best heading's), and that heading (for trackers).
        For a drone frame the rows are tiles around the point the frame's centre shows."""
        obs = self.observe(
            image,
            top_k=top_k,
            prior=prior,
            heading=heading,
            altitude_m=altitude_m,
            pitch_deg=pitch_deg,
            fov_deg=fov_deg,
        )
        return obs.ids, obs.scores, obs.heading_deg

    def embed(
        self,
        image: ImageInput,
        *,
        heading: float | None = None,
        altitude_m: float | None = None,
        pitch_deg: float | None = None,
        fov_deg: float | None = None,
    ) -> np.ndarray:
        """The query embeddings :meth:`localize` searches with, (R, D) unit rows.

        ``heading`` known: one row, the picture rolled (a drone frame turned, a photo placed)
        north-up. ``heading=None`` (unknown, as in :meth:`localize`): one row per searched
        heading, in the order of :func:`heading_grid` for a panorama or photo (0, 360/N, ...
        degrees; ``N`` = ``self.headings``, ``self.photo_headings`` for a photo) and 0, 270,
        180, 90 for a drone frame's quarter turns, so row 0 is the picture as given
        (``heading=0``). ``altitude_m`` / ``fov_deg`` crop a high drone frame as
        :meth:`localize` does (a ground bundle's ``fov_deg`` is a photo's field of view);
        ``pitch_deg`` moves only the answer, not the embedding, and is checked for the same
        range."""
        ground = self.view != "drone"
        flight = Flight(altitude_m, pitch_deg, None if ground else fov_deg)
        x = self._queries(image, heading, flight, fov_deg if ground else None)[0]
        return self.encoder.embed_tensor(x)

    def _search(self, z: np.ndarray, k: int, cand) -> tuple[np.ndarray, np.ndarray]:
        """:func:`d4g_edge.retrieval.search_tiles` in this localizer's bundle."""
        return search_tiles(self.bundle, z, k, cand)

    @cached_property
    def _far_m(self) -> float:
        """Two tile strides: a tile farther than this from the best one is another place."""
        step = self.bundle.stride_m or float(np.nanmedian(self.bundle.tiles.footprint_m)) / 2
        return 2.0 * float(step) if np.isfinite(step) and step > 0 else 50.0

    @cached_property
    def _grid_step_m(self) -> float:
        """The bundle's answer resolution (:attr:`Bundle.grid_step_m`), read once."""
        return self.bundle.grid_step_m


_DEFAULT: dict[tuple[str, str, int | None], Localizer] = {}
_DEFAULT_LOCK = threading.Lock()


def localize(
    image: ImageInput,
    *,
    bundle: str | Path | None = None,
    top_k: int = 5,
    prior: tuple[float, float, float] | None = None,
    heading: float | None = None,
    altitude_m: float | None = None,
    pitch_deg: float | None = None,
    fov_deg: float | None = None,
    backend: str | None = None,
    threads: int | None = None,
) -> Localization:
    """Localize one image with :meth:`Localizer.localize`'s keywords; the bundle (default:
    :func:`default_bundle_path`) loads once per (bundle, ``backend``, ``threads``) and is kept
    for the next call."""
    path = str(Path(bundle).resolve()) if bundle is not None else str(default_bundle_path())
    key = (path, backend, threads)
    with _DEFAULT_LOCK:
        if key not in _DEFAULT:
            _DEFAULT[key] = Localizer(path, backend=backend, threads=threads)
        loc = _DEFAULT[key]
    return loc.localize(
        image,
        top_k=top_k,
        prior=prior,
        heading=heading,
        altitude_m=altitude_m,
        pitch_deg=pitch_deg,
        fov_deg=fov_deg,
    )
