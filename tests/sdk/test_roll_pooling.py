"""benchmarks.roll_pooling's poolings: each picks the row its rule says."""

import numpy as np

from benchmarks.roll_pooling import poolings


def test_a_spike_wins_the_max_and_a_broad_peak_wins_the_averages():
    s = np.zeros((1, 12, 3))
    s[0, 4, 0] = 0.9  # row 0: one roll scores high
    s[0, 3:6, 1] = [0.6, 0.8, 0.6]  # row 1: three neighbouring rolls score well
    s[0, :, 2] = 0.1
    got = poolings(s)
    assert got["best roll (the SDK)"][0] == 0
    assert got["mean of 3 neighbouring rolls"][0] == 1
    assert got["mean of the best 3 rolls"][0] == 1
    assert got["log-sum-exp over rolls, T=0.005"][0] == 0  # a sharp soft max is the max
    assert all(v.shape == (1,) for v in got.values())
