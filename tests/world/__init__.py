"""Tests of the procedural world (train.world)."""
