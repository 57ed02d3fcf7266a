"""The ``d4g-edge`` commands: an application layer over the SDK (nothing in the runtime core
imports it).

* :mod:`~d4g_edge.cli.app` — the top-level parser and ``main`` (a user's mistake: one
  ``error:`` line, exit 2);
* one module per subcommand: :mod:`~d4g_edge.cli.localize`, :mod:`~d4g_edge.cli.info`,
  :mod:`~d4g_edge.cli.build_index` (``build-index``, ``merge``), :mod:`~d4g_edge.cli.bench`,
  :mod:`~d4g_edge.cli.calibrate`, and the :mod:`~d4g_edge.cli.follow` package (a frame stream
  tracked into positions, MAVLink ``GPS_INPUT`` for an autopilot);
* :mod:`~d4g_edge.cli.args` — the one command-line builder (config dataclass -> flags) and
  the flag validators, shared with the tooling's entry points;
* :mod:`~d4g_edge.cli.output` — strict JSON and printable file names;
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
