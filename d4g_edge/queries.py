"""A query as :class:`d4g_edge.localizer.Localizer` receives it: its keywords checked (a
:class:`SearchError` names the one that is wrong) and its picture turned into the encoder's
inputs (:func:`query_inputs`: a ground panorama's or photo's rolls, a drone frame's quarter
turns)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from d4g_edge import drone
from d4g_edge.config import EncoderConfig
from d4g_edge.drone import Flight
from d4g_edge.errors import SearchError
from d4g_edge.ground_query import exif_fov, ground_inputs
from d4g_edge.image import load_rgb
from d4g_edge.preprocess import preprocess
from d4g_edge.trust_features import image_problem


def query_inputs(
    image,
    heading,
    flight: Flight | None,
    fov,
    grid=None,
    *,
    config: EncoderConfig,
    headings: int,
    photo_headings: int,
    tile_m: Callable[[], float],
) -> tuple[np.ndarray, np.ndarray, str | None, float | None]:
    """(R, 3, H, W) inputs (R rolls, or R quarter turns of a drone frame), their
    headings, why the image cannot show a place (None when it can), and the field of
    view it was read as (ground bundles; 360: a panorama). ``flight`` (altitude, pitch,
    field of view) is a drone frame's; ``fov`` a ground photo's; ``grid``: the headings
    to search instead of :func:`heading_grid` (a benchmark's union of several).
    ``config``: the query encoder's; ``headings`` / ``photo_headings``: rolls searched for
    an unknown heading; ``tile_m``: the bundle's tile width, asked for only when a high drone
    frame is cropped to one tile."""
    heading = heading_value(heading)
    flight = flight or Flight()
    if config.view == "drone":
        return (*_drone_inputs(image, heading, flight, config, tile_m), None)
    if flight.altitude_m is not None or flight.pitch_deg is not None:
        raise SearchError(
            "altitude_m / pitch_deg describe drone frames; this bundle's query model "
            f"takes {config.view} panoramas"
        )
    rgb = load_rgb(image)
    problem = image_problem(rgb)  # of a photo itself, not of its canvas
    if fov is None:
        fov = exif_fov(image, rgb.shape)
    x, hs, fov = ground_inputs(
        rgb,
        config,
        heading=heading,
        fov=fov,
        headings=headings,
        photo_headings=photo_headings,
        grid=grid,
    )
    return x, hs, problem, fov


def _drone_inputs(
    image, heading, flight: Flight, config: EncoderConfig, tile_m: Callable[[], float]
) -> tuple[np.ndarray, np.ndarray, str | None]:
    rgb = load_rgb(image)
    problem = image_problem(rgb)
    if flight.altitude_m is not None:
        rgb = drone.crop_to_footprint(rgb, flight.altitude_m, tile_m(), flight.camera_fov_deg)
    x = preprocess(rgb, config)
    turns = drone.QUARTER_TURNS if heading is None else (drone.north_up_turns(float(heading)),)
    xs = np.concatenate([drone.turned(x, k) for k in turns])
    return xs, np.array([drone.heading_of_turn(k) for k in turns]), problem


def per_image(value, n: int, what: str) -> list:
    """A per-image list of a scalar-or-sequence keyword (a string is one value, not a list)."""
    many = isinstance(value, Sequence | np.ndarray) and not isinstance(value, str | bytes)
    values = list(value) if many else [value] * n
    if len(values) != n:
        raise SearchError(f"{len(values)} {what} for {n} images")
    return values


def flights_of(n: int, altitude_m, pitch_deg, fovs: list | None) -> list[Flight]:
    """One :class:`Flight` per image from the scalar-or-sequence keywords; ``fovs``: the
    drone camera's field of view per image (None: a ground bundle's, whose ``fov_deg`` is a
    photo's, not a camera's)."""
    altitudes = per_image(altitude_m, n, "altitudes")
    pitches = per_image(pitch_deg, n, "pitches")
    cameras = fovs if fovs is not None else [None] * n
    return [Flight(a, p, f) for a, p, f in zip(altitudes, pitches, cameras, strict=True)]


def finite(value, what: str, positive: bool = False) -> float:
    """``value`` as a finite float (> 0 when ``positive``), else a typed error."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SearchError(f"{what} must be a number, got {value!r}") from None
    if not np.isfinite(v) or (positive and v <= 0):
        raise SearchError(f"{what} must be a finite number{' > 0' if positive else ''}, got {v}")
    return v


def heading_value(value) -> float | None:
    """A heading in degrees (None: unknown, searched)."""
    return None if value is None else finite(value, "heading (degrees clockwise from north)")


def count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise SearchError(f"{what} must be an integer >= 1, got {value!r}")
    return int(value)
