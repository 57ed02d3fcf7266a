"""The encoder config: round trip, validation errors, and preprocessing equal to training's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from d4g_edge.config import ConfigError, EncoderConfig, ViewInput
from d4g_edge.preprocess import preprocess


def _student(**kw) -> EncoderConfig:
    base = dict(
        model_id="fastervit_edge",
        kind="student",
        inputs={"satellite": {"size": [128, 128], "polar": [64, 256]}},
        embed_dim=4,
        teacher_centre=[0.1, 0.2, 0.3, 0.4],
        teacher_sha256="a" * 64,
    )
    return EncoderConfig.from_dict({**base, **kw})


def test_round_trip_through_json():
    cfg = _student()
    again = EncoderConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert again.view == "satellite"
    assert again.input().tensor_shape == (64, 256)
    assert again.teacher_centre == (0.1, 0.2, 0.3, 0.4)


def test_centre_step_and_crop_rows_round_trip_and_older_configs_still_load():
    spec = {"size": [128, 128], "polar": [64, 256], "centre_step": 1 / 6}
    cfg = _student(inputs={"satellite": spec})
    assert cfg.input().centre_step == pytest.approx(1 / 6)
    assert EncoderConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    ground = _student(inputs={"ground": {"size": [64, 256], "crop_rows": [0.25, 0.75]}})
    again = EncoderConfig.from_dict(json.loads(json.dumps(ground.to_dict())))
    assert again.input().crop_rows == (0.25, 0.75) and again == ground
    # artifacts written before the off-centre recipe have no centre_step: one centre
    old = _student(inputs={"satellite": {"size": [128, 128], "polar": [64, 256]}})
    assert old.input().centre_step is None


def test_teacher_serves_several_views():
    cfg = EncoderConfig(
        model_id="resnet18",
        kind="teacher",
        inputs={"ground": ViewInput((64, 256)), "satellite": ViewInput((128, 128), (64, 256))},
        embed_dim=512,
    )
    assert cfg.views == ("ground", "satellite")
    with pytest.raises(ConfigError, match="name one"):
        _ = cfg.view
    with pytest.raises(ConfigError, match="no 'drone' input"):
        cfg.input("drone")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": 1}, r"unknown keys \['colour'\]"),
        ({"schema_version": 99}, "schema_version 99"),
        ({"kind": "pupil"}, "kind must be one of"),
        ({"embed_dim": 0}, "embed_dim"),
        ({"teacher_centre": [1.0]}, "teacher_centre needs 4"),
        ({"teacher_sha256": "xyz"}, "64 lowercase hex"),
        ({"inputs": {"satellite": {"size": [128, 64], "polar": [64, 256]}}}, "square tile"),
        ({"inputs": {"street": {"size": [1, 1]}}}, "unknown view"),
        ({"inputs": {"ground": {"size": [0, 4]}}}, "positive integers"),
        ({"quantization": "int3"}, "quantization must be"),
        ({"std": [1, 0, 1]}, "std must be positive"),
        ({"inputs": {"ground": {"size": [4, 8], "centre_step": 0.2}}}, "polar inputs only"),
        ({"inputs": {"ground": {"size": [4, 8], "crop_rows": [0.8, 0.2]}}}, "top < bottom"),
        (
            {"inputs": {"satellite": {"size": [8, 8], "polar": [4, 8], "centre_step": 2}}},
            r"centre_step must be a fraction",
        ),
    ],
)
def test_bad_configs_say_what_is_wrong(change, message):
    with pytest.raises(ConfigError, match=message):
        _student(**change)


def test_missing_keys_are_named():
    d = _student().to_dict()
    del d["embed_dim"], d["kind"]
    with pytest.raises(ConfigError, match=r"missing keys \['embed_dim', 'kind'\]"):
        EncoderConfig.from_dict(d, source="x.json")


def test_config_is_frozen_and_replace_copies():
    cfg = _student()
    with pytest.raises(AttributeError):
        cfg.embed_dim = 8  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.model_kwargs["depth"] = 3  # type: ignore[index]
    q = cfg.replace(quantization="int8")
    assert q.quantization == "int8" and cfg.quantization == "fp32"


def test_preprocess_matches_the_training_pipeline(tmp_path):
    torch = pytest.importorskip("torch")
    from PIL import Image

    from train.datasets._files import read_image
    from train.datasets.pairs import ViewDataset

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (200, 180, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "t.png")
    cfg = _student(mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3])
    ours = preprocess(img, cfg)
    ds = ViewDataset([tmp_path / "t.png"], (128, 128), cfg.mean, cfg.std, polar=(64, 256))
    theirs = ds[0][0].numpy()
    assert ours.shape == (1, 3, 64, 256)
    np.testing.assert_allclose(ours[0], theirs, atol=1e-5)
    assert read_image(tmp_path / "t.png", (128, 128)).shape == (128, 128, 3)
    assert torch is not None
