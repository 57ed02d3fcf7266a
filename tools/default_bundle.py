"""Build the SDK's bundled default (``d4g_edge/_default``): one command, reproducible.

The default is a demonstration on the procedural world, not a map of a real place: the
``edge-s`` students (off-centre recipe), exported to int8 ONNX with calibration on the
dataset's *training* cities, and the index of the held-out test cities of a world written in
VIGOR's layout (a half-overlap grid of tiles, cameras anywhere), each tile embedded around
the polar centres its encoder config asks for. A few held-out test panoramas ship beside it
as sample queries, with their true positions in ``IMAGE.json`` sidecars, so ``d4g-edge
localize`` prints the error in metres.

Usage::

    python -m train.synth --layout vigor --out data/vigor --train 3600 --test 1200
    python -m tools.default_bundle --data data/vigor     # -> d4g_edge/_default
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from d4g_edge.fileio import atomic_write_json, sha256_file
from d4g_edge.log import logger, setup_logging

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "d4g_edge" / "_default"
# the committed off-centre edge-s students (tools.release of the README's VIGOR run)
STUDENTS = Path(__file__).resolve().parents[1] / "weights" / "edge-s-vigor"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "query_pano.jpg"
SIZE_LIMIT_MB = 30.0
# The index (issue 22): 64 PCA components of the rows as int8 codes, every code scanned
# (11,925 rows: no coarse lists needed), memory-mapped. 0.9 MB instead of 12.2 MB as float16;
# SDK R@1 on the world's VIGOR test 63.5 % (float16: 63.7 %); see docs/map_scale.md.
# unit_rows False: the plain projection the shipped index and its calibration were built
# with (unit rows score 63.8 % at 48 or 64 components; a rebuild with them needs a refit of the
# calibration, whose features are these scores)
INDEX_PARAMS = {"storage": "pca-int8", "pca_dims": 64, "lists": 1, "unit_rows": False}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.default_bundle", description=__doc__.split("Usage")[0]
    )
    p.add_argument("--data", type=Path, required=True, help="world in VIGOR layout (train.synth)")
    p.add_argument(
        "--ground",
        type=Path,
        default=STUDENTS / "student_ground.pt",
        help="ground student (default: weights/edge-s-vigor)",
    )
    p.add_argument(
        "--satellite",
        type=Path,
        default=STUDENTS / "student_satellite.pt",
        help="satellite student (default: weights/edge-s-vigor)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="bundle folder")
    p.add_argument("--artifacts", type=Path, default=Path("artifacts/default"))
    p.add_argument("--samples", type=int, default=4, help="sample queries shipped")
    p.add_argument("--calibration-images", type=int, default=64)
    p.add_argument("--no-example", action="store_true", help="leave examples/ untouched")
    return p


def export_int8(view: str, checkpoint: Path | None, data: Path, out: Path, n: int) -> Path:
    from export.onnx import OnnxConfig, export
    from train.datasets.vigor import CROSS_CITIES, detect_layout

    # calibrate on the training cities only: the test cities are what the bundle indexes
    city = CROSS_CITIES["train"][0]
    sat_dir, pano_dir = detect_layout(data, city)
    images = pano_dir if view == "ground" else sat_dir
    return export(
        OnnxConfig(
            view=view,
            checkpoint=checkpoint,
            quant="int8",
            out=out,
            calibration_images=images,
            calibration_pairs=n,
        )
    )


def write_samples(split, out: Path, count: int) -> list[dict]:
    """Copy ``count`` evenly spaced test panoramas with ``.json`` truth sidecars."""
    out.mkdir(parents=True, exist_ok=True)
    rows = np.linspace(0, len(split) - 1, count).round().astype(int)
    samples = []
    for k, i in enumerate(rows):
        src = split.query_paths[i]
        dst = out / f"query_{k}{src.suffix.lower()}"
        shutil.copyfile(src, dst)
        lat, lon = (float(v) for v in split.query_latlon[i])
        truth = {
            "lat": lat,
            "lon": lon,
            "tile_id": int(split.query_ids[i]),
            "source": f"{split.dataset} {split.split} {src.parent.parent.name}/{src.name}",
            # VIGOR panoramas are north-aligned: the device's compass, as follow reads it
            "heading_deg": 0.0,
        }
        atomic_write_json(dst.with_name(dst.name + ".json"), truth)
        samples.append({"file": dst.name, **truth})
    return samples


def _stash_extras(bundle: Path, stash: Path) -> dict:
    """Files and manifest keys of an existing ``bundle`` that a build does not write (e.g. a
    calibration fitted later), copied to ``stash`` so that a rebuild keeps them."""
    path = bundle / "manifest.json"
    if not path.is_file():
        return {}
    old = json.loads(path.read_text())
    own = {"index.bin", "tiles.npz", "ground.onnx", "ground.pte", "ground.pte.json"}
    files = [f for f in old.get("files", {}) if f not in own and (bundle / f).is_file()]
    shutil.rmtree(stash, ignore_errors=True)
    for f in files:
        (stash / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle / f, stash / f)
    return {"manifest": old, "files": files, "dir": stash}


def _restore_extras(out: Path, kept: dict) -> None:
    """Put the stashed files back, listed with their SHA-256, and the manifest keys the new
    manifest lacks. A calibration was fitted on the previous index's scores: refit it."""
    if not kept:
        return
    path = out / "manifest.json"
    new = json.loads(path.read_text())
    for key, value in kept["manifest"].items():
        if key not in new:
            new[key] = value
            logger.warning("kept manifest key %r of the previous bundle", key)
    for f in kept["files"]:
        (out / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kept["dir"] / f, out / f)
        new["files"][f] = sha256_file(out / f)
        logger.warning("kept %s of the previous bundle; refit it if it depends on the index", f)
    atomic_write_json(path, new)


def build(args) -> Path:
    from d4g_edge.build.builder import build_index
    from d4g_edge.index import IndexParams
    from train.tile_sources import DatasetTileSource

    arts = args.artifacts
    ground = export_int8("ground", args.ground, args.data, arts, args.calibration_images)
    sat = export_int8("satellite", args.satellite, args.data, arts, args.calibration_images)
    src = DatasetTileSource("vigor", args.data, "test", vigor_mode="cross")
    kept = _stash_extras(args.out, arts / "kept")  # e.g. a calibration added to the bundle
    out = build_index(src, sat, args.out, ground=ground, params=IndexParams(**INDEX_PARAMS))
    _restore_extras(out, kept)
    samples = write_samples(src.data, out / "samples", args.samples)
    info = {
        "what": "demonstration bundle on the procedural world (not a real place)",
        "dataset": src.describe(),
        "synth_info": json.loads((args.data / "synth_info.json").read_text())
        if (args.data / "synth_info.json").is_file()
        else None,
        "ground_artifact_sha256": sha256_file(ground),
        "satellite_artifact_sha256": sha256_file(sat),
        "samples": samples,
        "command": "python -m tools.default_bundle " + " ".join(sys.argv[1:]),
    }
    atomic_write_json(out / "default.json", info)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    logger.info("bundled default %s: %.1f MB", out, size)
    if size > SIZE_LIMIT_MB:
        raise SystemExit(f"the default bundle is {size:.1f} MB, over {SIZE_LIMIT_MB} MB")
    if not args.no_example:
        first = out / "samples" / samples[0]["file"]
        shutil.copyfile(first, EXAMPLE)
        truth = first.with_name(first.name + ".json")
        shutil.copyfile(truth, EXAMPLE.with_name(EXAMPLE.name + ".json"))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging()
    out = build(args)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
