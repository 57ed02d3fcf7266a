"""Do a ground (or drone) student and a satellite student belong together?

Two students can share an index only if both regress the same teacher's embedding space:
same teacher (registry name and weights SHA-256), same embedding dim, and both regressing
centred targets ``normalise(t - centre_view)`` or both raw ones (each view has its own
centre). Checked from the configs the artifacts embed,
when a bundle is built and when it is loaded.

Usage::

    from d4g_edge.pairing import check_pairing
    check_pairing(ground_encoder.config, satellite_encoder.config)   # ModelMismatchError
"""

from __future__ import annotations

from d4g_edge.config import EncoderConfig
from d4g_edge.errors import ModelMismatchError


def check_pairing(ground: EncoderConfig, satellite: EncoderConfig, where: str = "") -> None:
    """Raise :class:`ModelMismatchError` unless the two students share one teacher space."""
    at = f"{where}: " if where else ""
    if satellite.kind != "student" or satellite.view != "satellite":
        raise ModelMismatchError(
            f"{at}the index model is a {satellite.views} {satellite.kind}, "
            "not the satellite student"
        )
    if ground.kind != "student" or ground.view not in ("ground", "drone"):
        raise ModelMismatchError(f"{at}the query model serves {ground.views}, not ground/drone")
    for name in ("teacher_sha256", "teacher_model"):
        g, s = getattr(ground, name), getattr(satellite, name)
        if g is None or s is None:
            raise ModelMismatchError(
                f"{at}cannot tell whether the models belong together: {name} is unset in the "
                f"{'ground' if g is None else 'satellite'} model's config; re-export it"
            )
        if g != s:
            raise ModelMismatchError(
                f"{at}the index was built by a satellite model distilled from another teacher: "
                f"{name} ground={g} vs satellite={s}; rebuild the index with the satellite "
                "student of the ground model's pair"
            )
    if ground.embed_dim != satellite.embed_dim:
        raise ModelMismatchError(
            f"{at}embed_dim ground={ground.embed_dim} vs satellite={satellite.embed_dim}"
        )
    # Each student of a centred pair regresses its own view's centre (train.distill), so the
    # centres differ by design; what must agree is whether targets were centred at all.
    gc, sc = ground.teacher_centre, satellite.teacher_centre
    if (gc is None) != (sc is None):
        raise ModelMismatchError(
            f"{at}one student regresses centred teacher embeddings and the other raw ones "
            f"(teacher_centre set on the {'ground' if gc is not None else 'satellite'} model "
            "only); they are not one pair"
        )
