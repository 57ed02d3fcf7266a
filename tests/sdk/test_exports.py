"""The SDK's public face: what ``import d4g_edge`` offers, and that every error it raises is a
:class:`d4g_edge.D4GEdgeError` (one type for an application to catch)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import d4g_edge

API = {
    "localize", "Localizer", "Localization", "Candidate", "Tracker", "TrackFix", "Bundle",
    "Flight", "haversine_m", "__version__",
}  # fmt: skip


def test_the_package_exports_the_sdk_and_not_the_tooling_names():
    exported = set(d4g_edge.__all__)
    errors = {n for n in exported if n.endswith("Error")}
    assert exported - errors == API
    for name in exported:
        assert getattr(d4g_edge, name) is not None
    # tooling names stay importable from their modules, not from the package
    assert "GeoReference" not in exported and "logger" not in exported
    from d4g_edge.geo import GeoReference  # noqa: F401
    from d4g_edge.log import logger  # noqa: F401


def _exception_classes():
    for info in pkgutil.walk_packages(d4g_edge.__path__, "d4g_edge."):
        if info.name == "d4g_edge.__main__":
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Exception) and cls.__module__ == info.name:
                yield cls


def test_every_sdk_exception_is_a_d4g_edge_error():
    classes = list(_exception_classes())
    assert len(classes) > 10  # the walk found the modules
    stray = [c for c in classes if not issubclass(c, d4g_edge.D4GEdgeError)]
    assert not stray, f"not D4GEdgeError subclasses: {stray}"
    from d4g_edge.config import ConfigError

    assert issubclass(ConfigError, d4g_edge.D4GEdgeError)


def test_every_exported_error_is_exported_by_its_name():
    from d4g_edge import errors

    for name, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, Exception):
            assert name in d4g_edge.__all__, name
