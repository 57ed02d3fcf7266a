"""Scores of int8 codes by onnxruntime's integer matrix product, as exact as float32.

A flat ``pca-int8`` scan (the bundled default's) scores every code: ``w @ codes.T``. numpy
has no int8 product, so it casts the codes to float32 first, and on one thread the cast is
most of the scan (the default's 11,925 x 64 codes: 0.13 ms, of which the product is 0.03).
onnxruntime, which the SDK loads for its encoder anyway, multiplies 8-bit integers directly
(``MatMulInteger``, its MLAS kernels; the codes packed once, when the session is made).

The float32 query is not rounded to 8 bits: each weight of a row of ``w`` becomes a 24-bit
integer of the row's scale (float32 keeps 24 bits), written as :data:`PASSES` digits of 6
bits and a sign; each digit row's product with the codes is exact in int32 and their sum,
weighted by 64^p, exact in float64, so the scores' error stays within float32's own rounding
of the dot product (tested against float64). The 7-bit inputs (0..126 around the zero point
63) keep every pair of u8 x s8 products within int16: x86 kernels without VNNI add such pairs
with saturation (``vpmaddubsw``), which 8-bit inputs could overflow.
"""

from __future__ import annotations

import threading

import numpy as np

PASSES = 4  # digits of 6 bits and a sign: 24 bits of each query weight, as float32 keeps
_BITS = 6
_ZERO = 63  # |digit| <= 63, so digit + _ZERO fits 0..126
MAX_CODES = 1 << 24  # code bytes (rows x dims) up to which a scorer is made (a 16 MB copy)
# rows scored at once up to which this beats the cast: the default's codes, one thread, 1 / 4 /
# 16 / 24 / 36 rows: 0.07 / 0.17 / 0.58 / 1.0 / 1.8 ms against 0.13 / 0.52 / 0.69 / 0.81 /
# 0.98 (past ~18 rows the PASSES-fold integer output costs more than the cast saves)
MAX_QUERIES = 16
_SHIFTS = np.arange(PASSES)[:, None] * _BITS
_WEIGHTS = 2.0 ** (_BITS * np.arange(PASSES))  # digit p counts 64^p

_CAST = 4_096  # int8 rows converted to float32 at once (a 1 MB buffer: stays in cache)

_INT8, _UINT8, _INT32 = 3, 2, 6  # onnx.TensorProto data types


def cast_scores(w: np.ndarray, codes) -> np.ndarray:
    """``w @ codes.T`` by numpy, the codes cast ``_CAST`` rows at a time into one buffer: a
    whole float32 copy on every query (3 MB for the default) evicts the encoder's weights
    from the cache. For many query rows, and for codes without a :class:`Int8Scores`."""
    out = np.empty((len(w), len(codes)), np.float32)
    buf = np.empty((min(_CAST, len(codes)), codes.shape[1]), np.float32)
    for s in range(0, len(codes), _CAST):
        e = min(s + _CAST, len(codes))
        block = buf[: e - s]
        block[...] = codes[s:e]
        np.matmul(w, block.T, out=out[:, s:e])
    return out


def split(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, K) float ``w`` as (M x PASSES, K) uint8 digit rows around :data:`_ZERO` and (M,)
    scales: ``w[m] ~ scales[m] * sum_p 64^p (rows[m * PASSES + p] - _ZERO)``, each weight
    rounded to a 24-bit integer of the row's scale (an error within float32's rounding)."""
    w = np.asarray(w, np.float64)
    scales = np.abs(w).max(1) / (2.0 ** (_BITS * PASSES) - 1)
    inv = np.divide(1.0, scales, out=np.zeros_like(scales), where=scales > 0)
    ints = np.rint(w * inv[:, None]).astype(np.int64)
    digits = (np.abs(ints)[:, None, :] >> _SHIFTS) & (2**_BITS - 1)  # (M, PASSES, K)
    digits *= np.sign(ints)[:, None, :]
    digits += _ZERO
    return digits.reshape(-1, w.shape[1]).astype(np.uint8), scales


class Int8Scores:
    """``w @ codes.T`` for (N, K) int8 ``codes``, through an onnxruntime session made on the
    first call (the codes copied and packed once: about twice their bytes)."""

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = codes
        self._session = None
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """The session's packed copy of the codes (0 before the first call)."""
        return 0 if self._session is None else int(self.codes.nbytes)

    def __call__(self, w: np.ndarray) -> np.ndarray:
        rows, scales = split(w)
        y = self._run(rows).reshape(len(scales), PASSES, -1)
        # the digits' products are exact integers below 2^19: their weighted sum is exact
        # in float64, and one rounding to float32 is the only error beyond the query's
        out = np.matmul(_WEIGHTS, y)  # (M, N)
        out *= scales[:, None]
        return out.astype(np.float32)

    def _run(self, rows: np.ndarray) -> np.ndarray:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = _session(self.codes)
        return self._session.run(None, {"A": rows})[0]


def _session(codes: np.ndarray):
    import onnxruntime as ort  # the SDK's runtime; imported when a scan first needs it

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1  # one small product a query
    opts.enable_cpu_mem_arena = False
    model = model_bytes(np.ascontiguousarray(np.asarray(codes, np.int8).T))
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


# ---- the model: one MatMulInteger, its ONNX protobuf written directly ------------------
# (the device install has onnxruntime but not the onnx package; the test checks these bytes
# with onnx's own checker)


def model_bytes(b: np.ndarray) -> bytes:
    """ONNX model ``Y = MatMulInteger(A, B, a_zero_point=_ZERO)``: A (M, K) uint8 input,
    ``b`` the (K, N) int8 initializer B, Y (M, N) int32."""
    k, n = b.shape
    node = _str(1, "A") + _str(1, "B") + _str(1, "zp") + _str(2, "Y") + _str(4, "MatMulInteger")
    graph = (
        _msg(1, node)
        + _str(2, "int8_scores")
        + _msg(5, _ints(1, b.shape) + _int(2, _INT8) + _str(8, "B") + _msg(9, b.tobytes()))
        + _msg(5, _int(2, _UINT8) + _str(8, "zp") + _msg(9, bytes([_ZERO])))
        + _msg(11, _value_info("A", _UINT8, ("M", k)))
        + _msg(12, _value_info("Y", _INT32, ("M", n)))
    )
    # ir_version 7, the graph, opset 13 of the default domain
    return _int(1, 7) + _msg(7, graph) + _msg(8, _int(2, 13))


def _value_info(name: str, elem: int, dims) -> bytes:
    shape = b"".join(_msg(1, _str(2, d) if isinstance(d, str) else _int(1, int(d))) for d in dims)
    return _str(1, name) + _msg(2, _msg(1, _int(1, elem) + _msg(2, shape)))


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte, v = v & 0x7F, v >> 7
        out.append(byte | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _int(field: int, v: int) -> bytes:
    return _varint(field << 3) + _varint(v)


def _ints(field: int, vs) -> bytes:
    return b"".join(_int(field, int(v)) for v in vs)


def _msg(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _str(field: int, s: str) -> bytes:
    return _msg(field, s.encode())
