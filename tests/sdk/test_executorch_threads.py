"""``threads`` of an ExecuTorch encoder sizes the thread pool XNNPACK runs on.

ExecuTorch keeps one thread pool per process and ``torch.set_num_threads`` does not reach it
(after ``threads=1`` the pool stayed at the machine's core count); the pool size is read back
from the runtime itself (its pybindings' ``_threadpool_get_thread_count``). A real ``.pte``
(the tiny XNNPACK-lowered conv net of :mod:`tests.sdk.test_executorch`) is opened, resized
and run, and its embeddings compared with the eager model's.
"""

from __future__ import annotations

import numpy as np
import pytest

from d4g_edge.errors import EncoderError
from d4g_edge.runtime import ExecuTorchEncoder, open_encoder, set_executorch_threads
from tests.sdk.test_executorch import pte  # noqa: F401  (the fixture: a lowered tiny net)

pytestmark = pytest.mark.slow  # lowering takes ~30 s on two cores


@pytest.fixture
def pool_size():
    """The runtime's own count of its pool's threads; the size is restored afterwards."""
    from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count

    before = _threadpool_get_thread_count()
    yield _threadpool_get_thread_count
    set_executorch_threads(before)


def _eager(model, enc, images):
    import torch

    x = np.concatenate([enc.preprocess(i) for i in images])
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_threads_sizes_the_xnnpack_pool(pte, pool_size):  # noqa: F811
    path, model = pte
    imgs = [np.random.default_rng(i).integers(0, 256, (32, 128, 3), np.uint8) for i in range(2)]
    three = open_encoder(path, threads=3)
    assert pool_size() == 3
    one = open_encoder(path, threads=1)
    assert pool_size() == 1  # the process's one pool: the last size set wins
    eager = _eager(model, one, imgs)
    np.testing.assert_allclose(one.embed(imgs), eager, atol=1e-5)
    # opened on the 3-thread pool, which the resize replaced: it still runs, on the new pool
    np.testing.assert_allclose(three.embed(imgs), eager, atol=1e-5)
    assert pool_size() == 1
    open_encoder(path)  # no threads: the pool is left as it is
    assert pool_size() == 1


def test_bad_thread_counts_are_refused(pte, pool_size):  # noqa: F811
    path, _ = pte
    before = pool_size()
    for bad in (-2, 1.5, True, "2"):
        with pytest.raises(EncoderError, match="threads must be a whole number >= 1"):
            set_executorch_threads(bad)
    with pytest.raises(EncoderError, match="threads must be a whole number >= 1"):
        ExecuTorchEncoder(path, threads=-1)
    assert pool_size() == before
