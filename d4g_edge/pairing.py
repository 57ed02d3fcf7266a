"""Do a ground (or drone) student and a satellite student belong together?

Two students can share an index only if both regress the same teacher's embedding space:
same teacher (registry name and weights SHA-256), same embedding dim, and both regressing
centred targets ``normalise(t - centre_view)`` or both raw ones (each view has its own
centre). Checked from the configs the artifacts embed,
when a bundle is built and when it is loaded. Every :class:`ModelMismatchError` names the
fields that differ (``teacher_sha256 ground=… vs satellite=…``).

Usage::

    from d4g_edge.pairing import check_pairing, config_differences
    check_pairing(ground_encoder.config, satellite_encoder.config)   # ModelMismatchError
    config_differences(embedded, manifest)   # ["model_id: 'a' vs 'b'", ...]
"""

from __future__ import annotations

from typing import Any

from d4g_edge.config import EncoderConfig
from d4g_edge.errors import ModelMismatchError


def _short(value: Any) -> str:
    """A config value for a message: long lists (a teacher centre) by their length."""
    if isinstance(value, list | tuple) and len(value) > 4:
        return f"[{len(value)} values]"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def config_differences(
    got: EncoderConfig, expected: EncoderConfig, ignore: tuple[str, ...] = ()
) -> list[str]:
    """``"field: got vs expected"`` for every top-level config field that differs
    (``inputs.<view>`` for the view inputs), in the config's field order."""
    a, b = got.to_dict(), expected.to_dict()
    out = []
    for key in a:
        if key in ignore or a[key] == b.get(key):
            continue
        if key == "inputs" and isinstance(b.get(key), dict):
            views = sorted(set(a[key]) | set(b[key]))
            if set(a[key]) != set(b[key]):
                out.append(f"view: {sorted(a[key])} vs {sorted(b[key])}")
            else:
                out += [
                    f"inputs.{v}: {a[key][v]} vs {b[key][v]}"
                    for v in views
                    if a[key][v] != b[key][v]
                ]
        elif key == "teacher_centre" and a[key] and b[key] and len(a[key]) == len(b[key]):
            n = sum(x != y for x, y in zip(a[key], b[key], strict=True))
            out.append(f"teacher_centre: {n} of {len(a[key])} values differ")
        else:
            out.append(f"{key}: {_short(a[key])} vs {_short(b.get(key))}")
    return out


def check_pairing(ground: EncoderConfig, satellite: EncoderConfig, where: str = "") -> None:
    """Raise :class:`ModelMismatchError` unless the two students share one teacher space."""
    at = f"{where}: " if where else ""
    if satellite.kind != "student" or satellite.views != ("satellite",):
        raise ModelMismatchError(
            f"{at}the index model is not the satellite student: view "
            f"{list(satellite.views)} vs ['satellite'], kind {satellite.kind!r} vs 'student'"
        )
    if ground.kind != "student" or ground.views not in (("ground",), ("drone",)):
        raise ModelMismatchError(
            f"{at}the query model is not a ground or drone student: view "
            f"{list(ground.views)} vs ['ground'] or ['drone'], kind {ground.kind!r} vs 'student'"
        )
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
            f"{at}embed_dim ground={ground.embed_dim} vs satellite={satellite.embed_dim}: the "
            "query model and the index model do not embed into one space"
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
