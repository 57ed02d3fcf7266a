"""The photo student (train.photo_student) and its evaluation (train.photo_eval) on a tiny world."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from d4g_edge.config import ViewInput
from d4g_edge.photo import FILL_RGB, pano_to_pinhole
from train.datasets import load, read_image
from train.loop import load_encoder
from train.loop.checkpoint import config_for, save_checkpoint
from train.models import create_model
from train.photo_eval import Gallery, query_views, roll_shift
from train.photo_eval import main as eval_main
from train.photo_student import (
    PhotoStudentConfig,
    PhotoStudentTask,
    heading_loss,
    heading_offsets,
    info_nce,
)
from train.photo_student import main as student_main
from train.presets import PRESETS, HParams
from train.synth import SynthConfig, synthesize

PANO, SAT, EMBED = (32, 128), 32, 64
ROWS = (57.5 / 180, 122.5 / 180)  # the edge-s band of a full-sphere panorama


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("photo_student")
    data = root / "vigor"
    synthesize(
        SynthConfig(
            "vigor",
            data,
            train=8,
            test=6,
            seed=5,
            sat_size=SAT,
            pano_size=PANO,
            tile_m=45.0,
            town_size_m=300.0,
            pairs_per_town=4,
            vigor_districts=1,
        )
    )
    torch.manual_seed(0)
    ground = create_model("student", "fastervit_edge", embed_dim=EMBED, input_size=PANO)
    sat = create_model("student", "fastervit_edge", embed_dim=EMBED, input_size=PANO)
    paths = {"data": data, "ground": root / "g.pt", "satellite": root / "s.pt"}
    g_in = {"ground": ViewInput(PANO, crop_rows=ROWS)}
    s_in = {"satellite": ViewInput((SAT, SAT), polar=PANO, centre_step=0.25)}
    save_checkpoint(paths["ground"], ground, config_for(ground, kind="student", inputs=g_in))
    save_checkpoint(paths["satellite"], sat, config_for(sat, kind="student", inputs=s_in))
    return paths


def _args(world, out: Path, *extra: str) -> list[str]:
    return [
        "--data", str(world["data"]), "--out", str(out), "--ground", str(world["ground"]),
        "--satellite", str(world["satellite"]), "--cache", str(out.parent / "cache"),
        "--batch-size", "4", "--workers", "0", "--device", "cpu", "--threads", "1",
        "--val-queries", "4", "--val-unknown", "2", "--heading-views", "2",
        "--heading-rolls", "3", *extra,
    ]  # fmt: skip


@pytest.mark.slow  # a training run (~15 s on an idle 2-core machine)
def test_one_epoch_then_resume(world, tmp_path):
    out = tmp_path / "run"
    assert student_main(_args(world, out, "--epochs", "1")) == 0
    first = load_encoder(out / "student_ground.pt")[2]
    assert first["epoch"] == 1 and first["encoder"]["inputs"]["ground"]["crop_rows"] == list(ROWS)
    assert "fov360_unknown24_r1" in first["metrics"] and "fov90_known_r1" in first["metrics"]
    # a finished run refuses a fresh start into the same folder, and resumes to a longer one
    with pytest.raises(SystemExit):
        student_main(_args(world, out, "--epochs", "2"))
    assert student_main(_args(world, out, "--epochs", "2", "--resume")) == 0
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    second = load_encoder(out / "student_ground.pt")[2]
    assert second["epoch"] == 2 and second["sha256"] != first["sha256"]
    # the frozen targets were computed once, in the reusable cache folder
    assert len(list((out / "teacher_cache").glob("photo-targets-*.npz"))) == 1


def test_heading_loss_learns_the_true_heading(world, tmp_path):
    """A few steps of the heading term alone on one batch: the true heading must come to
    score above every wrong one, which a flipped target or roll would prevent."""
    cfg = PhotoStudentConfig(
        data=world["data"], out=tmp_path / "h", ground=world["ground"],
        satellite=world["satellite"], cache=tmp_path / "cache", pano_share=1.0, variants=1,
        heading_views=4, heading_rolls=3, w_distill=0.0, w_nce=0.0, w_heading=1.0,
        val_queries=2, val_unknown=1, threads=1,
    )  # fmt: skip
    from train.loop.distributed import DistInfo

    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    hp = HParams(epochs=1, batch_size=4, lr=1e-3)
    torch.manual_seed(1)
    task = PhotoStudentTask(cfg, PRESETS["edge-s"], hp, info)
    batch = next(iter(task.train_batches(1)))
    model = task.modules()["ground"]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    losses, accs = [], []
    for _ in range(12):
        loss, logs = task.training_step(batch, {"ground": model})
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(logs["loss_heading"])
        accs.append(logs["heading_acc"])
    # chance: log(4) = 1.39 and 1/4 of views with the true heading on top
    assert np.mean(losses[-3:]) < 0.5 * losses[0], losses
    assert np.mean(accs[-3:]) >= 0.9, accs


def test_heading_terms_by_hand():
    torch.manual_seed(0)
    sats = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    # true views equal to their tile, wrong ones orthogonal-ish noise: near-zero loss
    wrong = torch.nn.functional.normalize(torch.randn(3, 5, 8), dim=-1) * 0.1
    assert heading_loss(sats, wrong, sats) < 1e-3
    assert heading_loss(wrong[:, 0], sats[:, None].repeat(1, 5, 1), sats) > 5
    shifts = heading_offsets(50, 7, 256, torch.Generator().manual_seed(0))
    # 10 to 350 degrees off the truth, i.e. never the true column nor its neighbours
    assert shifts.min() >= 7 and shifts.max() <= 256 - 7
    assert (shifts[:, 1:] > shifts[:, :-1]).all()  # one per stratum, in order
    # two places of one tile are not negatives: the same loss as a batch without the other
    views = torch.nn.functional.normalize(sats + 0.5 * torch.randn(3, 8), dim=-1)
    assert info_nce(views, sats, torch.tensor([0, 0, 1])) < info_nce(views, sats, torch.arange(3))


def test_query_views_place_the_photo_where_its_heading_says(world):
    split = load("vigor", world["data"], "test", mode="cross")
    ground_cfg = load_encoder(world["ground"])[1]
    pano = read_image(split.query_paths[0])
    known, blind = query_views(pano, 90.0, 135.0, ground_cfg)
    width = known.shape[-1]
    # the blind canvas rolled to the true heading is the known one (up to a column of
    # resampling), and the panorama's 360 views are exact rolls of each other
    assert np.abs(np.roll(blind, roll_shift(135.0, width), -1) - known).mean() < 0.05
    fill = (np.asarray(FILL_RGB) / 255 - np.asarray(ground_cfg.mean)) / np.asarray(ground_cfg.std)
    # outside a 90-degree photo the canvas is the fill (zero input): 3/4 of the columns
    outside = np.isclose(known, fill[:, None, None], atol=1e-3).all(axis=(0, 1))
    assert 0.7 < outside.mean() < 0.8
    north, turned = query_views(pano, 360.0, 90.0, ground_cfg)
    assert np.array_equal(np.roll(turned, roll_shift(90.0, width), -1), north)
    assert pano_to_pinhole(pano, fov_deg=90, heading_deg=0, size=(24, 32)).shape == (24, 32, 3)


def test_gallery_scores_rank_and_heading():
    """Two tiles, one centre each; the query's second roll matches tile 1."""
    from train.datasets import CrossViewSplit

    split = CrossViewSplit(
        dataset="vigor", split="test", root=Path("."), query_paths=(Path("q"),),
        reference_paths=(Path("a"), Path("b")), reference_ids=np.array([0, 1]),
        query_ids=np.array([1]), positive_index=np.array([1]),
        query_latlon=np.array([[40.0, -80.0]]), reference_latlon=np.array([[40.0, -80.0],
        [40.001, -80.0]]),
    )  # fmt: skip
    refs = np.eye(4, dtype=np.float32)[:2]
    g = Gallery(split, refs, None)
    emb = np.stack([np.eye(4, dtype=np.float32)[[0, 1, 2]] * [[0.5], [1.0], [0.1]]])
    res = g.score(np.array([0]), emb, np.array([0.0, 120.0, 240.0]))
    assert res["rank"][0] == 0 and res["heading"][0] == 120.0
    assert res["error_m"][0] == pytest.approx(111.2, abs=0.5)  # it found tile 1: 0.001 deg N


def test_photo_eval_cli(world, tmp_path):
    results = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"{backend}.json"
        argv = ["--data", str(world["data"]), "--ground", str(world["ground"]),
                "--satellite", str(world["satellite"]), "--fov", "360", "90", "--headings",
                "4", "8", "--cache", str(tmp_path / "c"), "--json", str(out),
                "--backend", backend]  # fmt: skip
        assert eval_main(argv) == 0
        results[backend] = json.loads(out.read_text())["results"][str(world["ground"])]
    res = results["torch"]
    assert set(res) == {"fov360", "fov90"}
    assert set(res["fov90"]) == {"known", "known_subset", "unknown4", "unknown8"}
    assert res["fov360"]["unknown8"]["queries"] == res["fov360"]["known"]["queries"] == 6
    # onnxruntime (the SDK's runtime) ranks like torch
    for fov, modes in res.items():
        for mode, m in modes.items():
            assert results["onnx"][fov][mode]["recall@10"] == m["recall@10"], (fov, mode)
            assert results["onnx"][fov][mode]["median_m"] == pytest.approx(m["median_m"])


def test_photo_mix_interpolates_weights(world, tmp_path):
    from train.photo_mix import interpolate

    old, cfg, _ = load_encoder(world["ground"])
    new = create_model("student", "fastervit_edge", embed_dim=EMBED, input_size=PANO)
    new_path = tmp_path / "new.pt"
    save_checkpoint(new_path, new, cfg)
    ends = [load_encoder(interpolate(world["ground"], new_path, a, tmp_path / f"{a}.pt"))[0]
            for a in (0.0, 0.25, 1.0)]  # fmt: skip
    for mixed, ref in ((ends[0], old), (ends[2], new)):
        assert all(torch.equal(v, ref.state_dict()[k]) for k, v in mixed.state_dict().items())
    key = "proj.weight"
    want = 0.75 * old.state_dict()[key] + 0.25 * new.state_dict()[key]
    assert torch.allclose(ends[1].state_dict()[key], want)
    assert load_encoder(tmp_path / "0.25.pt")[2]["interpolated"]["alpha"] == 0.25
    with pytest.raises(ValueError, match="different encoders"):
        interpolate(world["ground"], world["satellite"], 0.5, tmp_path / "x.pt")
