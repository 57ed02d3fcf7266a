"""The ``d4g-edge`` commands: an application layer over the SDK (nothing in the runtime core
imports it).

* :mod:`~d4g_edge.cli.app` — the parser and the subcommands (``localize``, ``info``,
  ``build-index``, ``merge``, ``bench``, ``calibrate``, ``follow``);
* :mod:`~d4g_edge.cli.follow` — ``d4g-edge follow``: a frame stream tracked into positions
  (MAVLink ``GPS_INPUT`` for an autopilot);
* :mod:`~d4g_edge.cli.bench` — ``d4g-edge bench``: latency and recall of a bundle;
* :mod:`~d4g_edge.cli.plot` — ``--plot``: a localization drawn over its candidates.

Usage::

    from d4g_edge.cli import main
    main(["info"])          # as `d4g-edge info`; returns the exit status
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Run ``d4g-edge`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Imported on call, so importing one command module (e.g. :mod:`d4g_edge.cli.follow`) does
    not build the whole command line."""
    from d4g_edge.cli.app import main as run

    return run(argv)
