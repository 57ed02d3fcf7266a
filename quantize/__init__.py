"""torchao quantization of the students: PT2E int8 (XNNPACK) and Linear-only int8/int4 QAT.

``python -m quantize.qat`` fine-tunes a student with fake quantization and writes the
converted model as a ``torch.export`` program (``.pt2``) with its EncoderConfig; the
``export`` exporters lower it. See :mod:`quantize.qat` for the schemes.

Usage::

    python -m quantize.qat --view ground --dataset cvusa --data data/cvusa --scheme int8 \\
        --out runs/qat_ground
"""
