"""Phone photos and unknown heading: a ground student on canvases of any field of view (issue 23).

Every test query's panorama is cut into a 4:3 pinhole photo (:func:`d4g_edge.photo.
pano_to_pinhole`, cylindrical from 180 degrees on) at a seeded random heading, pitch 0 and
roll 0; FoV 360 is the panorama itself turned to that heading. The photo is placed back into
a panorama canvas (:func:`~d4g_edge.photo.photo_to_pano` on :func:`~d4g_edge.photo.canvas_for`
the encoder, :data:`~d4g_edge.photo.FILL_RGB` outside the photo) and goes through the ground
preprocessing (crop rows, resize, normalise): what the SDK feeds the encoder for a photo.

* heading known: the canvas is placed at the true heading (a panorama: north-up);
* heading unknown: the photo is placed at heading 0 and the canvas is encoded at ``N``
  candidate headings, circular rolls of the encoder input as :class:`d4g_edge.Localizer`
  does; a tile scores its best (roll, centre), the answer's heading is the best roll's.
  ``N = 24`` is every third roll of ``N = 72``, so both come from one pass.

References: the split's tiles around their grid of centres (the bundle's reference set,
:class:`train.loop.evalsets.RetrievalSet`). Reported: R@1, R@10 (the positive tile's rank),
within 25 m and median metres of the best (tile, centre), median heading error (unknown).

Usage::

    python -m train.photo_eval --data data/vigor --ground weights/edge-s-vigor/student_ground.pt \\
        --fov 360 180 120 90 60 --headings 24 72 --json runs/photo_eval/old.json
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from d4g_edge.cli.args import config_from_args, dataclass_parser
from d4g_edge.config import EncoderConfig
from d4g_edge.fileio import atomic_write_json
from d4g_edge.geo import haversine_m, offset_latlon
from d4g_edge.ground_query import circular_error, roll_shift
from d4g_edge.log import logger, setup_logging
from d4g_edge.photo import canvas_for, pano_to_pinhole, photo_to_pano
from d4g_edge.preprocess import preprocess
from train.datasets import CrossViewSplit, load, read_image
from train.loop.arg_checks import FlagError, check_output_file, user_message
from train.loop.checkpoint import CheckpointError
from train.loop.distributed import DistInfo
from train.loop.embed import embed_dataset
from train.loop.evalsets import RetrievalSet
from train.loop.rebuild import load_encoder

FOVS = (360.0, 180.0, 120.0, 90.0, 60.0)
PHOTO_ASPECT = 0.75  # height / width of a phone photo held landscape (4:3)
PANO_BAND = (-90.0, 90.0)  # VIGOR panoramas cover the full sphere
CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


@dataclass(frozen=True)
class PhotoEvalConfig:
    data: Path = field(metadata={"help": "VIGOR-layout dataset root (cross-area test split)"})
    ground: tuple[Path, ...] = field(
        metadata={"help": "ground student(s): weights file or run checkpoint with its sidecar"}
    )
    satellite: Path = field(
        default=Path("weights/edge-s-vigor/student_satellite.pt"),
        metadata={"help": "the frozen satellite student the references are embedded with"},
    )
    fov: tuple[float, ...] = field(
        default=FOVS, metadata={"help": "horizontal fields of view in degrees (360: panorama)"}
    )
    headings: tuple[int, ...] = field(
        default=(24, 72), metadata={"help": "candidate heading counts for heading unknown"}
    )
    queries: int = field(default=0, metadata={"help": "seeded subset of queries (0: all)"})
    unknown_queries: int = field(
        default=200, metadata={"help": "of those, searched over headings (0: all; seeded)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the photos' headings and subset"})
    json: Path | None = field(default=None, metadata={"help": "write the results here"})
    cache: Path | None = field(
        default=Path("runs/photo_eval_cache"),
        metadata={"help": "folder caching the reference embeddings (none: recompute)"},
    )
    threads: int = field(
        default=1, metadata={"help": "torch CPU threads (more on a shared machine spin-waits)"}
    )
    batch_size: int = field(default=144, metadata={"help": "images per forward pass"})
    backend: str = field(
        default="torch", metadata={"choices": ("torch", "onnx"), "help": "ground inference"}
    )


def photo_shape(fov: float, pano_width: int) -> tuple[int, int]:
    """A 4:3 photo with, on average, as many columns per degree as the panorama."""
    width = max(64, round(pano_width * fov / 360.0))
    return max(48, round(width * PHOTO_ASPECT)), width


def place_photo(photo: np.ndarray, fov: float, heading: float, cfg: EncoderConfig) -> np.ndarray:
    """(3, H, W) encoder input of a photo placed into the encoder's canvas at ``heading``."""
    size, band = canvas_for(cfg, pano_band=PANO_BAND)
    canvas, _ = photo_to_pano(
        photo, fov_deg=fov, heading_deg=heading, out_size=size, vfov_band=band
    )
    return preprocess(canvas, cfg)[0]


def query_views(
    pano: np.ndarray, fov: float, heading: float, cfg: EncoderConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(known, blind) inputs of one query seen at ``heading``: placed at the true heading, and
    at heading 0 as the SDK must place a photo whose heading it does not know."""
    if fov >= 360.0:
        x = preprocess(pano, cfg)[0]
        return x, np.roll(x, -roll_shift(heading, x.shape[-1]), axis=-1)
    photo = pano_to_pinhole(
        pano, fov_deg=fov, heading_deg=heading, size=photo_shape(fov, pano.shape[1])
    )
    return place_photo(photo, fov, heading, cfg), place_photo(photo, fov, 0.0, cfg)


def query_headings(n: int, width: int, seed: int) -> np.ndarray:
    """A seeded heading per query on the encoder's column grid (a panorama's roll is exact)."""
    return np.random.default_rng([seed, 23]).integers(0, width, n) * 360.0 / width


class Gallery:
    """The reference tiles embedded around their centres, and each (tile, centre)'s position."""

    def __init__(self, split: CrossViewSplit, emb: np.ndarray, centres: np.ndarray | None):
        t, centres = len(split.reference_paths), np.zeros((1, 2)) if centres is None else centres
        self.emb = np.ascontiguousarray(emb.reshape(t * len(centres), -1), dtype=np.float32)
        self.shape = (t, len(centres))
        side = split.tile_side_m() if split.tile_stride else 0.0
        ref = split.reference_latlon
        lat, lon = offset_latlon(
            ref[:, None, 0], ref[:, None, 1], centres[None, :, 0] * side, centres[None, :, 1] * side
        )
        self.latlon = np.stack([lat, lon], axis=-1)  # (T, C, 2)
        self.split = split

    def score(self, q: np.ndarray, emb: np.ndarray, headings: np.ndarray) -> dict[str, np.ndarray]:
        """Outcomes of queries ``q`` from their embeddings ``(len(q), J, D)`` at the candidate
        ``headings`` (J,): positive tile's rank, metres and heading error of the best match."""
        (t, c), n, j = self.shape, *emb.shape[:2]
        s = (emb.reshape(n * j, -1) @ self.emb.T).reshape(n, j * t * c)
        best = s.argmax(axis=1)
        roll, rest = np.divmod(best, t * c)
        tile_best, centre = np.divmod(rest, c)
        tiles = s.reshape(n, j, t, c).max(axis=(1, 3))
        pos = self.split.positive_index[q]
        rank = (tiles > tiles[np.arange(n), pos][:, None]).sum(axis=1)
        truth = self.split.query_latlon[q]
        found = self.latlon[tile_best, centre]
        err = haversine_m(truth[:, 0], truth[:, 1], found[:, 0], found[:, 1])
        return {"rank": rank, "error_m": err, "heading": headings[roll]}


def summarize(rank, error_m, heading_err=None) -> dict[str, float]:
    """Percentages and medians of one (FoV, heading mode) over its queries."""
    out = {
        "queries": len(rank),
        "recall@1": float((rank < 1).mean() * 100),
        "recall@10": float((rank < 10).mean() * 100),
        "within_25m": float((error_m <= 25.0).mean() * 100),
        "median_m": float(np.median(error_m)),
    }
    if heading_err is not None:
        out["heading_err_median"] = float(np.median(heading_err))
        out["heading_within_10"] = float((heading_err <= 10.0).mean() * 100)
        hit = rank < 1
        out["heading_err_median_r1"] = float(np.median(heading_err[hit])) if hit.any() else None
    return out


@torch.no_grad()
def encode(model: nn.Module, x: np.ndarray, batch_size: int) -> np.ndarray:
    rows = [
        model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size]))).float().numpy()
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(rows)


def _rolls(blind: np.ndarray, shifts: list[int]) -> np.ndarray:
    """(Q, J, 3, H, W): each blind input at every candidate heading's roll."""
    return np.stack([np.stack([np.roll(x, s, axis=-1) for s in shifts]) for x in blind])


def evaluate_models(
    models: dict[str, nn.Module],
    cfg: EncoderConfig,
    gallery: Gallery,
    *,
    fovs: tuple[float, ...],
    headings: tuple[int, ...],
    queries: np.ndarray,
    unknown: np.ndarray | None = None,
    seed: int = 0,
    batch_size: int = 144,
    chunk: int = 8,
) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """``{model: {"fov<F>": {mode: metrics}}}`` (module docstring): heading known on
    ``queries``; unknown (and known again, ``known_subset``, to compare like with like) on
    ``unknown`` (default: all of ``queries``)."""
    split, width = gallery.split, cfg.input("ground").size[1]
    rolls = math.lcm(*headings) if headings else 0
    if rolls > 720:  # lcm of the counts: (24, 72) share one pass, (7, 11) would not
        raise FlagError(f"--headings {headings}: they need {rolls} rolls (> 720)")
    cand = np.arange(rolls) * 360.0 / max(rolls, 1)
    shifts = [roll_shift(h, width) for h in cand]
    truth = query_headings(len(split.query_paths), width, seed)
    blind_set = set((queries if unknown is None else unknown).tolist())
    for m in models.values():
        m.eval()
    acc: dict = {}
    for fov in fovs:
        for start in tqdm(range(0, len(queries), chunk), desc=f"FoV {fov:g}", leave=False):
            q = queries[start : start + chunk]
            views = [query_views(read_image(split.query_paths[i]), fov, truth[i], cfg) for i in q]
            known = np.stack([v[0] for v in views])
            sel = np.array([i in blind_set for i in q], dtype=bool) if rolls else np.zeros(0, bool)
            blind = _rolls(np.stack([v[1] for v in views])[sel], shifts) if sel.any() else None
            for name, model in models.items():
                out = acc.setdefault(name, {}).setdefault(f"fov{fov:g}", {})
                res = gallery.score(q, encode(model, known, batch_size)[:, None], np.zeros(1))
                _append(out, "known", res, None)
                if blind is None:
                    continue
                _append(out, "known_subset", {k: v[sel] for k, v in res.items()}, None)
                emb = encode(model, blind.reshape(-1, *blind.shape[2:]), batch_size)
                emb = emb.reshape(len(blind), rolls, -1)
                for n in headings:
                    idx = np.arange(0, rolls, rolls // n)
                    res = gallery.score(q[sel], emb[:, idx], cand[idx])
                    _append(out, f"unknown{n}", res, circular_error(res["heading"], truth[q[sel]]))
    for modes in (modes for f in acc.values() for modes in f.values()):
        for mode, v in modes.items():
            modes[mode] = summarize(**{k: np.concatenate(x) for k, x in v.items() if x})
    return acc


def _append(out: dict, mode: str, res: dict, heading_err: np.ndarray | None) -> None:
    parts = {"rank": res["rank"], "error_m": res["error_m"], "heading_err": heading_err}
    for key, value in parts.items():
        out.setdefault(mode, {}).setdefault(key, []).extend([] if value is None else [value])


def load_gallery(
    split: CrossViewSplit, satellite: Path, *, cache: Path | None, batch_size: int = 128
) -> Gallery:
    """The frozen satellite student's reference embeddings of ``split`` (cached on disk)."""
    model, cfg, sidecar = load_encoder(satellite)
    if cfg.view != "satellite":
        raise CheckpointError(f"--satellite {satellite} holds a {cfg.view} encoder")
    spec = cfg.input("satellite")
    refs = RetrievalSet(split, spec.size[0], (8, 8), spec.polar, spec.centre_step)
    key = hashlib.sha256(
        json.dumps([sidecar.get("sha256"), [str(p) for p in split.reference_paths]]).encode()
    ).hexdigest()[:16]
    path = None if cache is None else Path(cache) / f"references-{key}.npy"
    if path is not None and path.is_file():
        return Gallery(split, np.load(path), refs.centres)
    emb = embed_dataset(model, refs.references, CPU, batch_size=batch_size, desc="references")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, emb)
    return Gallery(split, emb, refs.centres)


def load_ground(path: Path, backend: str = "torch") -> tuple[nn.Module, EncoderConfig]:
    model, cfg, _ = load_encoder(path)
    if cfg.view != "ground":
        raise CheckpointError(f"--ground {path} holds a {cfg.view} encoder, not a ground one")
    return (OnnxModel(model, cfg) if backend == "onnx" else model), cfg


class OnnxModel:
    """``model`` exported to ONNX and run by onnxruntime, the SDK's runtime (fp32: the same
    embeddings within ~1e-6; about 1.5x faster than eager torch on this CPU)."""

    def __init__(self, model: nn.Module, cfg: EncoderConfig):
        import onnxruntime as ort  # an optional extra, as for the SDK

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ground.onnx"
            dummy = torch.zeros(2, 3, *cfg.input("ground").tensor_shape)
            axes = {"x": {0: "batch"}, "y": {0: "batch"}}
            torch.onnx.export(
                model.eval(), dummy, str(path), input_names=["x"], output_names=["y"],
                dynamic_axes=axes, opset_version=17, dynamo=False,
            )  # fmt: skip
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = torch.get_num_threads(), 1
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def eval(self) -> OnnxModel:
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"x": x.numpy()})[0])


def subset(n: int, k: int, seed: int) -> np.ndarray:
    """``k`` seeded query indices in order (all ``n`` for k = 0)."""
    if k <= 0 or k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 7]).choice(n, k, replace=False))


def format_table(results: dict) -> str:
    """One markdown table per model: FoV x heading mode."""
    lines = []
    for name, fovs in results.items():
        lines += [
            f"\n{name}",
            "| FoV | heading | R@1 | R@10 | within 25 m | median m | heading err (median) |",
            "|---|---|---|---|---|---|---|",
        ]
        for fk, modes in fovs.items():
            for mode, m in modes.items():
                head = m.get("heading_err_median")
                lines.append(
                    f"| {fk[3:]} | {mode.replace('unknown', 'unknown N=')} ({m['queries']}) | "
                    f"{m['recall@1']:.1f} | {m['recall@10']:.1f} | {m['within_25m']:.1f} | "
                    f"{m['median_m']:.1f} | {'' if head is None else f'{head:.1f}°'} |"
                )
    return "\n".join(lines)


def check_config(cfg: PhotoEvalConfig) -> None:
    for ok, what in (
        (cfg.fov and all(0 < f <= 360 for f in cfg.fov), f"--fov {cfg.fov}: degrees in (0, 360]"),
        (all(n >= 1 for n in cfg.headings), f"--headings {cfg.headings}: counts >= 1"),
        (min(cfg.threads, cfg.batch_size) >= 1, "--threads and --batch-size: at least 1"),
    ):
        if not ok:
            raise FlagError(f"expected {what}")
    check_output_file(cfg.json, "--json")


def run(cfg: PhotoEvalConfig) -> dict:
    check_config(cfg)
    torch.set_num_threads(cfg.threads)
    split = load("vigor", cfg.data, "test", mode="cross")
    ground = {str(p): load_ground(p, cfg.backend) for p in cfg.ground}
    configs = {c.input("ground") for _, c in ground.values()}
    if len(configs) != 1:
        raise CheckpointError(f"--ground models take different inputs: {configs}")
    t0 = time.time()
    gallery = load_gallery(split, cfg.satellite, cache=cfg.cache, batch_size=cfg.batch_size)
    queries = subset(len(split.query_paths), cfg.queries, cfg.seed)
    unknown = queries[subset(len(queries), cfg.unknown_queries, cfg.seed + 1)]
    results = evaluate_models(
        {k: m for k, (m, _) in ground.items()},
        next(iter(ground.values()))[1],
        gallery,
        fovs=tuple(cfg.fov),
        headings=tuple(cfg.headings),
        queries=queries,
        unknown=unknown,
        seed=cfg.seed,
        batch_size=cfg.batch_size,
    )
    out = {"config": json.loads(json.dumps(asdict(cfg), default=str)), "results": results}
    out["seconds"] = round(time.time() - t0, 1)
    print(format_table(results))
    if cfg.json is not None:
        atomic_write_json(cfg.json, out)
    return out


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = dataclass_parser(PhotoEvalConfig, __doc__)
    cfg = config_from_args(PhotoEvalConfig, parser.parse_args(argv))
    try:
        out = run(cfg)
    except (ValueError, FileNotFoundError) as err:
        parser.exit(2, f"error: {user_message(err)}\n")
    logger.info("evaluated in %.0f s", out["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
