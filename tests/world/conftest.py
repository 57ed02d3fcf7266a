"""Shared small worlds (generated once per session; 300 m keeps generation well under 1 s)."""

from __future__ import annotations

import pytest

from train.world import World


@pytest.fixture(scope="session")
def small_world() -> World:
    return World.generate(seed=3, style="suburb", size_m=300.0)
