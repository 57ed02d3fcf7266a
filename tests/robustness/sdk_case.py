"""One SDK corpus case: a call or a ``d4g-edge`` command line that must end well.

The device-side counterpart of :mod:`tests.robustness.corpus`: every case ends in a typed
:class:`d4g_edge.errors.D4GEdgeError` (the CLI: exit 2 with one ``error:`` line) or a correct
result, with no traceback and no hang (a wall-clock limit per case, SIGALRM).

Usage::

    from tests.robustness.sdk_case import Outcome, call, cli

    out = call(lambda: Localizer(bundle), timeout_s=20)
    assert out.kind in ("ok", "typed"), out.detail
    out = cli(["localize", str(img), "--top-k", "0"], timeout_s=20)
    assert out.kind == "typed" and out.code == 2, out.detail
"""

from __future__ import annotations

import contextlib
import io
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from d4g_edge.errors import D4GEdgeError


class CaseTimeout(BaseException):
    """Raised in the main thread when a case runs past its limit (a hang)."""


@dataclass
class Outcome:
    kind: str  # "ok", "typed" (a D4GEdgeError / exit 2), "untyped" (a traceback), "hang"
    value: Any = None  # the call's result, or the CLI's exit code
    error: BaseException | None = None
    stdout: str = ""
    stderr: str = ""
    detail: str = ""

    @property
    def code(self) -> int | None:
        return self.value if isinstance(self.value, int) else None


@contextlib.contextmanager
def _alarm(timeout_s: float):
    def fire(signum, frame):
        raise CaseTimeout(f"no answer within {timeout_s} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def call(fn: Callable[[], Any], timeout_s: float = 30.0) -> Outcome:
    """Run ``fn()``: "ok" with its value, "typed" for a D4GEdgeError, else "untyped"/"hang"."""
    try:
        with _alarm(timeout_s):
            value = fn()
    except CaseTimeout as err:
        return Outcome("hang", error=err, detail=str(err))
    except D4GEdgeError as err:
        return Outcome("typed", error=err, detail=f"{type(err).__name__}: {err}")
    except Exception as err:
        return Outcome("untyped", error=err, detail="".join(traceback.format_exception(err)))
    return Outcome("ok", value=value)


def cli(argv: list[str], timeout_s: float = 30.0) -> Outcome:
    """``d4g-edge ARGV`` in this process: "ok" (exit 0), "typed" (exit 2 and one ``error:``
    line on stderr, no traceback), else "untyped" (a traceback, an exception out of ``main``,
    or another exit code) or "hang"."""
    from d4g_edge.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with _alarm(timeout_s), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse's own usage errors exit 2
                code = exit_.code if isinstance(exit_.code, int) else 1
    except CaseTimeout as exc:
        return Outcome("hang", error=exc, stdout=out.getvalue(), stderr=err.getvalue())
    except BaseException as exc:
        tb = "".join(traceback.format_exception(exc))
        return Outcome(
            "untyped", error=exc, stdout=out.getvalue(), stderr=err.getvalue(), detail=tb
        )
    stdout, stderr = out.getvalue(), err.getvalue()
    result = Outcome("ok", value=code, stdout=stdout, stderr=stderr)
    if "Traceback" in stderr:
        result.kind, result.detail = "untyped", stderr[-2000:]
    elif code == 0:
        result.kind = "ok"
    elif code == 2 and any(line.startswith(("error:", "d4g-edge")) for line in stderr.splitlines()):
        # "error: ..." from the SDK, "d4g-edge <cmd>: error: ..." from argparse's usage check
        result.kind, result.detail = "typed", stderr.strip().splitlines()[-1]
    else:
        result.kind, result.detail = "untyped", f"exit {code}; stderr: {stderr[-2000:]}"
    return result
