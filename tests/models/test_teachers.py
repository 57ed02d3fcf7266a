"""Teacher registry: every teacher embeds both views, keeps Sample4Geo's key format, round-trips."""

from __future__ import annotations

import math

import pytest
import timm
import torch

from d4g_edge.config import ViewInput
from train.loop.checkpoint import CheckpointError, config_for, save_checkpoint
from train.loop.rebuild import load_teacher
from train.models import UnknownModelError, create_model, list_models

SMALL = [n for n in list_models("teacher") if n != "convnext_base"]


def test_registry_offers_paper_and_small_teachers() -> None:
    names = list_models("teacher")
    assert "convnext_base" in names
    assert {"convnext_atto", "resnet18"} <= set(names)
    with pytest.raises(UnknownModelError, match="resnet18"):
        create_model("teacher", "resnet_18")


@pytest.mark.parametrize("name", SMALL)
def test_teacher_embeds_both_view_shapes_to_unit_vectors(name: str) -> None:
    torch.manual_seed(0)
    teacher = create_model("teacher", name).eval()
    with torch.no_grad():
        sat = teacher(torch.randn(2, 3, 32, 32))
        pano = teacher(torch.randn(2, 3, 32, 128))  # same weights, wide panorama
    assert sat.shape == pano.shape == (2, teacher.embed_dim)
    torch.testing.assert_close(sat.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(pano.norm(dim=1), torch.ones(2))
    keys = list(teacher.state_dict())
    assert "logit_scale" in keys
    assert all(k.startswith("model.") for k in keys if k != "logit_scale")
    assert teacher.logit_scale.shape == ()
    assert teacher.logit_scale.item() == pytest.approx(math.log(1 / 0.07))


def test_convnext_base_is_the_1024d_paper_teacher() -> None:
    with torch.device("meta"):  # shapes only: no 88M-parameter allocation in the fast suite
        teacher = create_model("teacher", "convnext_base")
    assert teacher.embed_dim == 1024
    assert sum(p.numel() for p in teacher.parameters()) > 80e6


def test_factory_kwargs_reach_timm() -> None:
    bn = create_model("teacher", "convnext_atto", norm_layer="batchnorm2d", drop_path_rate=0.1)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules())
    assert any(k.endswith("running_mean") for k in bn.state_dict())
    assert bn(torch.randn(2, 3, 32, 32)).shape == (2, 320)


_SAT32 = {"satellite": ViewInput((32, 32))}


def test_checkpoint_round_trip(tmp_path) -> None:
    teacher = create_model("teacher", "resnet10t")
    with torch.no_grad():
        teacher.logit_scale.fill_(3.0)
    cfg = config_for(teacher, kind="teacher", inputs={"satellite": ViewInput((32, 32))})
    save_checkpoint(tmp_path / "teacher.pt", teacher, cfg, extra={"preset": "edge-s", "epoch": 2})
    loaded, got = load_teacher(tmp_path / "teacher.pt")
    assert got["epoch"] == 2 and got["encoder"]["model_id"] == "resnet10t"
    assert got["encoder"]["embed_dim"] == 512
    with pytest.raises(CheckpointError, match="preset 'edge-s', not 'paper'"):
        load_teacher(tmp_path / "teacher.pt", preset="paper")
    assert not loaded.training
    x = torch.randn(2, 3, 32, 64)
    torch.testing.assert_close(loaded(x), teacher.eval()(x))
    assert loaded.logit_scale.item() == 3.0


def test_published_sample4geo_state_dict_loads(tmp_path) -> None:
    """A file as Sample4Geo writes it: torch.save of a hand-built ``model.*`` state_dict,
    from DDP (``module.`` prefix), with no sidecar."""
    backbone = timm.create_model("convnext_atto", pretrained=False, num_classes=0)
    state = {f"module.model.{k}": v for k, v in backbone.state_dict().items()}
    state["module.logit_scale"] = torch.tensor(math.log(1 / 0.05))
    torch.save(state, tmp_path / "cvusa.pth")
    teacher, meta = load_teacher(tmp_path / "cvusa.pth", name="convnext_atto")
    assert meta is None
    x = torch.randn(1, 3, 32, 32)
    expected = torch.nn.functional.normalize(backbone.eval()(x), dim=-1)
    torch.testing.assert_close(teacher(x), expected)
    assert teacher.logit_scale.item() == pytest.approx(math.log(20.0))


def test_pickled_file_is_refused(tmp_path) -> None:
    torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pth")  # a whole pickled module
    with pytest.raises(CheckpointError, match="weights_only"):
        load_teacher(tmp_path / "model.pth", name="resnet18")


def test_wrong_architecture_names_the_differences(tmp_path) -> None:
    atto = create_model("teacher", "convnext_atto")
    save_checkpoint(tmp_path / "t.pt", atto, config_for(atto, kind="teacher", inputs=_SAT32))
    with pytest.raises(CheckpointError) as err:
        load_teacher(tmp_path / "t.pt", name="convnext_femto")  # sidecar says convnext_atto
    assert "convnext_atto" in str(err.value)
    (tmp_path / "t.pt.json").unlink()
    with pytest.raises(CheckpointError) as err:
        load_teacher(tmp_path / "t.pt", name="convnext_femto")
    msg = str(err.value)
    assert "'convnext_femto'" in msg and "shape" in msg and "convnext_atto" in msg  # the fix


def test_missing_sidecar_without_name_says_what_to_pass(tmp_path) -> None:
    torch.save(create_model("teacher", "resnet10t").state_dict(), tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match=r"name=.*resnet10t"):
        load_teacher(tmp_path / "w.pth")
