"""Distillation: teacher-embedding cache, online-teacher equivalence, perturbation, --view runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from d4g_edge.config import ViewInput
from train.datasets import PairDataset, load
from train.datasets.augment import NUM_VARIANTS, apply_variant
from train.datasets.pairs import to_tensor
from train.datasets.perturb import MarginalPerturbation
from train.distill import student_file
from train.loop import CheckpointError, load_encoder, save_checkpoint
from train.loop.checkpoint import config_for, read_sidecar
from train.loop.distributed import DistInfo
from train.loop.rebuild import init_student
from train.method.distill_pairs import DistillPairs
from train.method.teacher_cache import TeacherCache
from train.models import create_model

from .conftest import run_module

CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    teacher = create_model("teacher", "resnet10t").eval()
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    inputs = {"ground": ViewInput((32, 128)), "satellite": ViewInput((64, 64))}
    cfg = config_for(teacher, kind="teacher", inputs=inputs)
    save_checkpoint(path, teacher, cfg, extra={"preset": "edge-s"})
    return path


def _key(**extra):
    return {"teacher": "t", "pairs": 24, "variants": NUM_VARIANTS, **extra}


def test_apply_variant_is_flip_then_quarter_turns():
    g = np.arange(4 * 8 * 3).reshape(4, 8, 3)
    s = np.arange(5 * 5 * 3).reshape(5, 5, 3)
    g0, s0 = apply_variant(g, s, 0)
    assert (g0 == g).all() and (s0 == s).all()
    g1, s1 = apply_variant(g, s, 1)  # one counter-clockwise turn: old east column on top
    assert (s1[0] == s[:, -1]).all() and (g1 == np.roll(g, -2, axis=1)).all()
    g4, s4 = apply_variant(g, s, 4)  # mirror only
    assert (s4 == s[:, ::-1]).all() and (g4 == g[:, ::-1]).all()
    with pytest.raises(ValueError, match="variant"):
        apply_variant(g, s, NUM_VARIANTS)


def test_cache_equals_teacher_run_online(tiny_cvusa, teacher_ckpt, tmp_path):
    teacher, _, _ = load_encoder(teacher_ckpt)
    pairs = PairDataset(load("cvusa", tiny_cvusa, "train"), 64, (32, 128))
    cache = TeacherCache.build(
        tmp_path / "c",
        teacher,
        _key(),
        pairs,
        views=("ground", "satellite"),
        info=CPU,
        batch_size=8,
    )
    assert cache.arrays["ground"].shape == (NUM_VARIANTS, len(pairs), teacher.embed_dim)
    with torch.no_grad():
        for variant, index in [(0, 0), (3, 5), (4, 23), (7, 11)]:
            g, s = apply_variant(*pairs.raw_pair(index), variant)
            for view, img in (("ground", g), ("satellite", s)):
                online = teacher(to_tensor(img, pairs.mean, pairs.std)[None])[0].numpy()
                np.testing.assert_allclose(
                    cache.lookup(view, variant, index),
                    online,
                    atol=1e-5,
                    err_msg=f"{view} v{variant} #{index}",
                )


def test_cache_is_reused_for_same_key_and_rebuilt_for_another(tiny_cvusa, teacher_ckpt, tmp_path):
    teacher, _, _ = load_encoder(teacher_ckpt)
    pairs = PairDataset(load("cvusa", tiny_cvusa, "train"), 64, (32, 128))

    def build(key):
        return TeacherCache.build(
            tmp_path,
            teacher,
            key,
            pairs,
            views=("ground",),
            info=CPU,
            variants=2,
        )

    build(_key())
    marker = np.load(tmp_path / "ground.npy", mmap_mode="r+")
    marker[0, 0, 0] = 42.0  # a reused cache keeps this; a rebuilt one overwrites it
    marker.flush()
    del marker
    assert build(_key()).lookup("ground", 0, 0)[0] == 42.0
    assert build(_key(teacher="other")).lookup("ground", 0, 0)[0] != 42.0


def test_online_teacher_inputs_give_the_cached_targets(tiny_cvusa, teacher_ckpt, tmp_path):
    teacher, _, _ = load_encoder(teacher_ckpt)
    pairs = PairDataset(load("cvusa", tiny_cvusa, "train"), 64, (32, 128))
    cache = TeacherCache.build(tmp_path, teacher, _key(), pairs, views=("ground",), info=CPU)
    cached = DistillPairs(pairs, ("ground",), NUM_VARIANTS, None, cache, None)
    online = DistillPairs(pairs, ("ground",), NUM_VARIANTS, None, None, pairs)
    for i in (0, 9, 17):
        torch.manual_seed(i)  # the same variant draw for both
        a = cached[i]
        torch.manual_seed(i)
        b = online[i]
        with torch.no_grad():
            target = teacher(b["teacher_ground"][None])[0]
        torch.testing.assert_close(a["target_ground"], target, atol=1e-5, rtol=0)
        torch.testing.assert_close(a["ground"], b["ground"])


def test_marginal_perturbation_stays_inside_its_margins():
    rng = np.random.default_rng(0)
    pano = rng.integers(0, 255, (32, 128, 3), dtype=np.uint8)
    sat = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    none = MarginalPerturbation(sat_keep=1.0, pano_roll=0.0, pano_rows=0.0, colour=0.0)
    assert (none.ground(pano, rng) == pano).all() and (none.satellite(sat, rng) == sat).all()
    roll_only = MarginalPerturbation(pano_roll=0.02, pano_rows=0.0, colour=0.0)
    for _ in range(10):
        out = roll_only.ground(pano, rng)
        shifts = [k for k in range(-3, 4) if (np.roll(pano, k, axis=1) == out).all()]
        assert len(shifts) == 1, "a roll of at most 2 % of 128 columns (<= 3 px)"
    full = MarginalPerturbation()
    g, s = full.ground(pano, rng), full.satellite(sat, rng)
    assert g.shape == pano.shape and g.dtype == np.uint8
    assert s.shape == sat.shape and s.dtype == np.uint8
    with pytest.raises(ValueError, match="sat_keep"):
        MarginalPerturbation(sat_keep=0.1)


def test_independent_view_runs_then_evaluate_the_pair(tiny_cvusa, teacher_ckpt, tmp_path):
    runs = {}
    for view in ("ground", "satellite"):
        runs[view] = tmp_path / view
        run_module(
            "train.distill",
            "--dataset",
            "cvusa",
            "--data",
            str(tiny_cvusa),
            "--teacher",
            str(teacher_ckpt),
            "--view",
            view,
            "--out",
            str(runs[view]),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--variants",
            "2",
            "--sat-size",
            "64",
            "--ground-size",
            "32x128",
            "--model",
            "resnet18",
            *(["--perturb"] if view == "ground" else []),  # the opt-in path runs end to end too
        )
        other = "satellite" if view == "ground" else "ground"
        assert (runs[view] / student_file(view)).is_file()
        assert not (runs[view] / student_file(other)).exists()
        _, cfg, sidecar = load_encoder(runs[view] / student_file(view))
        assert (
            cfg.view == view
            and cfg.teacher_sha256 == read_sidecar(teacher_ckpt)["sha256"]
            and sidecar["perturb"] is (view == "ground")
        )
    out = tmp_path / "pair.json"
    run_module(
        "train.evaluate",
        "--dataset",
        "cvusa",
        "--data",
        str(tiny_cvusa),
        "--ground",
        str(runs["ground"] / student_file("ground")),
        "--satellite",
        str(runs["satellite"] / student_file("satellite")),
        "--json",
        str(out),
    )
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["num_queries"] == 16 and 0.0 <= metrics["recall@1"] <= 100.0


def test_a_two_view_cache_serves_a_one_view_run(tiny_cvusa, teacher_ckpt, tmp_path):
    teacher, _, _ = load_encoder(teacher_ckpt)
    pairs = PairDataset(load("cvusa", tiny_cvusa, "train"), 64, (32, 128))
    TeacherCache.build(
        tmp_path, teacher, _key(), pairs, views=("ground", "satellite"), info=CPU, variants=2
    )
    assert TeacherCache.is_valid(tmp_path, _key(), ("ground",))
    assert TeacherCache.is_valid(tmp_path, _key(), ("satellite",))
    assert not TeacherCache.is_valid(tmp_path, _key(teacher="other"), ("ground",))
    TeacherCache.build(tmp_path, teacher, _key(), pairs, views=("ground",), info=CPU, variants=2)
    assert TeacherCache.is_valid(tmp_path, _key(), ("ground", "satellite")), "not rebuilt"


def test_centring_removes_the_shared_direction_and_matches_in_numpy_and_torch():
    from train.loop.embed import centre

    rng = np.random.default_rng(0)
    common = np.ones(8, np.float32)
    x = (common + 0.1 * rng.standard_normal((50, 8))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    mu = x.mean(0)
    c = centre(x, mu)
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-5)
    # raw vectors all point the same way; centred ones do not
    assert (x @ x.T).min() > 0.9 and abs(float(c.mean(0) @ c.mean(0))) < 0.05
    torch.testing.assert_close(
        centre(torch.from_numpy(x), torch.from_numpy(mu)), torch.from_numpy(c), atol=1e-5, rtol=0
    )
    assert centre(x, None) is x


def test_evaluate_centres_the_teacher_side_for_a_centred_student():
    from train.evaluation.encoders import align_spaces

    q, r = np.eye(2, dtype=np.float32), np.array([[1, 1], [1, -1]], np.float32)
    centres = {"ground": [0, 0], "satellite": [1, 0]}
    student = {"encoder": {"kind": "student"}, "teacher_centres": centres}
    teacher = {"encoder": {"kind": "teacher"}}
    q2, r2 = align_spaces(q, r, student, teacher)
    assert (q2 == q).all()
    np.testing.assert_allclose(r2, [[0, 1], [0, -1]])
    q3, r3 = align_spaces(q, r, teacher, teacher)
    assert (q3 == q).all() and (r3 == r).all()


def _student(seed: int):
    torch.manual_seed(seed)
    return create_model("student", "resnet18", embed_dim=512, input_size=(32, 128))


def _save_student(path, student, view="ground", teacher_sha256="a" * 64):
    cfg = config_for(
        student, kind="student", inputs={view: ViewInput((32, 128))}, teacher_sha256=teacher_sha256
    )
    return save_checkpoint(path, student, cfg)


def test_init_student_loads_weights_and_refuses_another_view_teacher_or_shape(tmp_path):
    saved = _save_student(tmp_path / "student_ground.pt", _student(0))
    fresh = _student(1)
    assert any(
        not torch.equal(v, fresh.state_dict()[k]) for k, v in _student(0).state_dict().items()
    )
    init_student(fresh, saved, view="ground", teacher_sha256="a" * 64)
    for k, v in _student(0).state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    with pytest.raises(CheckpointError, match="holds the ground student"):
        init_student(_student(1), saved, view="satellite", teacher_sha256="a" * 64)
    with pytest.raises(CheckpointError, match="same teacher"):
        init_student(_student(1), saved, view="ground", teacher_sha256="b" * 64)
    other = create_model("student", "resnet18", embed_dim=512, input_size=(64, 256))
    with pytest.raises(CheckpointError, match=r"built for input \[32, 128\]"):
        init_student(other, saved, view="ground", teacher_sha256="a" * 64)
