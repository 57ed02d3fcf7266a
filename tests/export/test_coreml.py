"""Core ML conversion of a tiny student; on Linux the saved package's spec is what we check."""

from __future__ import annotations

import json

import coremltools as ct
import pytest

from d4g_edge.config import EncoderConfig
from export import METADATA_KEY
from export.coreml import CoreMLConfig, export, op_types
from tests.export.conftest import EMBED_DIM, GROUND_HW


@pytest.fixture(scope="module")
def int8_package(ground_student, tmp_path_factory):
    out = tmp_path_factory.mktemp("coreml")
    return export(
        CoreMLConfig(
            view="ground", checkpoint=ground_student, quant="int8", out=out, verify_pairs=4
        )
    )


def test_int8_package_reloads_with_image_input_metadata_and_int8_weights(int8_package):
    assert int8_package.name == "ground_int8.mlpackage" and int8_package.is_dir()
    assert [p.name for p in int8_package.parent.iterdir()] == ["ground_int8.mlpackage"]
    spec = ct.utils.load_spec(str(int8_package))
    assert spec.WhichOneof("Type") == "mlProgram"
    assert spec.specificationVersion >= ct.target.iOS16  # the stated minimum target
    (inp,), (out,) = spec.description.input, spec.description.output
    image = inp.type.imageType
    assert (inp.name, image.height, image.width) == ("image", *GROUND_HW)
    assert image.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB
    array = out.type.multiArrayType
    assert out.name == "embedding" and list(array.shape) == [1, EMBED_DIM]
    assert array.dataType == ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    cfg = EncoderConfig.from_dict(json.loads(spec.description.metadata.userDefined[METADATA_KEY]))
    assert (cfg.view, cfg.quantization, cfg.embed_dim) == ("ground", "int8-weights", EMBED_DIM)
    ops = op_types(spec)
    assert {"conv", "softmax", "reduce_l2_norm"} <= ops  # FasterViT's attention + the L2 norm
    assert "constexpr_affine_dequantize" in ops or "constexpr_blockwise_shift_scale" in ops
    # normalisation is in the graph (ImageType only scales by 1/255): the first ops after the
    # input subtract the mean and scale by 1/std
    assert {"sub", "mul"} <= ops
