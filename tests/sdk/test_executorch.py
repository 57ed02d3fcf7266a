"""ExecuTorchEncoder on a real .pte (tiny conv net lowered to XNNPACK) with its JSON sidecar."""

from __future__ import annotations

import numpy as np
import pytest

from d4g_edge.errors import EncoderError
from d4g_edge.runtime import ExecuTorchEncoder, open_encoder
from tests.sdk._models import GROUND_HW, config_json, student_config

pytestmark = pytest.mark.slow  # lowering takes ~30 s on two cores


@pytest.fixture(scope="module")
def pte(tmp_path_factory):
    torch = pytest.importorskip("torch")
    pytest.importorskip("executorch")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, 16)

        def forward(self, x):
            z = self.fc(torch.relu(self.conv(x)).mean((2, 3)))
            return z / z.norm(dim=1, keepdim=True)

    torch.manual_seed(0)
    model = Tiny().eval()
    ep = torch.export.export(model, (torch.zeros(1, 3, *GROUND_HW),))
    prog = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()]).to_executorch()
    path = tmp_path_factory.mktemp("pte") / "ground_fp32.pte"
    path.write_bytes(prog.buffer)
    path.with_name(path.name + ".json").write_text(config_json(student_config("ground")))
    return path, model


def test_executorch_matches_eager_and_batches(pte):
    import torch

    path, model = pte
    enc = open_encoder(path, threads=1)
    assert isinstance(enc, ExecuTorchEncoder) and enc.config == student_config("ground")
    imgs = [
        np.random.default_rng(i).integers(0, 256, (40, 160, 3), dtype=np.uint8) for i in range(3)
    ]
    z = enc.embed(imgs)  # the program has a static batch of 1: run one by one
    x = np.concatenate([enc.preprocess(i) for i in imgs])
    with torch.no_grad():
        eager = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(z, eager, atol=1e-5)


def test_bundle_with_onnx_and_pte_grounds(pte, tiny_models, tmp_path):
    from d4g_edge.bundle import Bundle, model_entry, write_bundle
    from d4g_edge.localizer import Localizer
    from d4g_edge.tiletable import TileTable

    path, _ = pte
    sat = open_encoder(tiny_models["satellite"])
    grounds = [open_encoder(tiny_models["ground"]), open_encoder(path)]
    v = np.eye(4, 16, dtype=np.float32)
    table = TileTable.from_rows(range(4), [40.0, 40.001, 40.002, 40.003], [-88.0] * 4, [50.0] * 4)
    out = write_bundle(
        tmp_path / "b", v, table, model_entry(sat.path, sat.config, sat.sha256), query=grounds
    )
    b = Bundle.load(out)
    assert b.query_file(".pte").name == "ground.pte" and b.query_path.name == "ground.onnx"
    img = np.zeros((32, 128, 3), np.uint8)
    et = Localizer(b, backend="executorch")
    assert et.encoder.backend == "executorch"
    assert Localizer(b).encoder.backend == "onnxruntime"
    assert et.localize(img, heading=0).candidates[0].tile_id in range(4)
    # a model of the user's: its runtime from its suffix; a backend that cannot run it is
    # named before its parser fails on the other format
    assert Localizer(b, query=path).encoder.backend == "executorch"
    with pytest.raises(EncoderError, match="ExecuTorch program; backend 'onnxruntime'"):
        Localizer(b, query=path, backend="onnxruntime")
    with pytest.raises(EncoderError, match="ONNX model; backend 'executorch'"):
        open_encoder(tiny_models["ground"], backend="executorch")
