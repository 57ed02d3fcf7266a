"""Where ``follow``'s frames come from: a watched folder, or a camera through OpenCV.

Files ``*.jpg|*.jpeg|*.png`` (not hidden) of the folder are taken in name order, each once,
when their size *and* mtime have not changed for ``settle_s``; a frame that then fails to
decode is handed back with :meth:`FrameFolder.retry`. A folder that disappears is waited for.

Usage::

    for path in FrameFolder(Path("frames"), settle_s=0.5, idle_timeout_s=10):
        ...
    for rgb in camera_frames("camera:0"):
        ...
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from d4g_edge.cli.follow.errors import FollowError
from d4g_edge.cli.output import printable as show
from d4g_edge.log import logger

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class _Entry:
    sig: tuple[int, int] = (-1, -1)  # (size, mtime_ns) last seen
    since: float = 0.0  # when sig was first seen
    taken: bool = False
    attempts: int = 0
    not_before: float = 0.0
    warned: bool = False


@dataclass
class FrameFolder:
    """New image files of ``folder`` in name order, each once, once fully written.

    A file is taken when its size and mtime have not changed for ``settle_s``; a frame that
    then fails to decode is handed back with :meth:`retry`. Iteration ends after
    ``idle_timeout_s`` without a new frame and with no file still being written or retried.
    """

    folder: Path
    interval_s: float = 0.2
    settle_s: float = 0.5
    idle_timeout_s: float | None = None
    retries: int = 3
    entries: dict[str, _Entry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.folder.is_dir():
            what = "is not a folder" if self.folder.exists() else "does not exist"
            raise FollowError(
                f"frame folder {show(self.folder)} {what}; give the folder the camera writes "
                "frames into, or camera:N"
            )

    def retry(self, path: Path) -> bool:
        """Hand back a frame that failed to decode: True if it will be taken again."""
        e = self.entries.get(path.name)
        if e is None or e.attempts >= self.retries or not os.path.isfile(path):
            return False  # out of attempts, or vanished: the caller skips it
        e.attempts += 1
        e.taken = False
        now = time.monotonic()
        e.since = now  # it must settle again ...
        e.not_before = now + max(self.settle_s, self.interval_s, 0.25) * e.attempts  # ... and wait
        return True

    def _names(self, gone: bool) -> list[str] | None:
        try:
            names = sorted(os.listdir(self.folder))
        except OSError as err:
            if not gone:
                logger.warning(
                    "frame folder %s cannot be listed (%s); waiting for it to come back%s",
                    show(self.folder),
                    err.strerror or err,
                    "" if self.idle_timeout_s is None else f" for {self.idle_timeout_s:g} s",
                )
            return None
        if gone:
            logger.warning("frame folder %s is back; its files are new frames", show(self.folder))
            self.entries.clear()
        return names

    def _skip(self, name: str, e: _Entry, why: str) -> None:
        e.taken = True
        if not e.warned:
            logger.warning("skipping frame %s: %s", show(self.folder / name), why)
            e.warned = True

    def __iter__(self) -> Iterator[Path]:
        gone, last = False, time.monotonic()
        while True:
            names = self._names(gone)
            gone = names is None
            now, ready, busy = time.monotonic(), [], False
            for name in names or ():
                if name.startswith(".") or os.path.splitext(name)[1].lower() not in FRAME_SUFFIXES:
                    continue
                e = self.entries.setdefault(name, _Entry(since=now))
                if e.taken:
                    continue
                try:
                    st = os.stat(self.folder / name)
                except FileNotFoundError:
                    link = os.path.islink(self.folder / name)
                    self._skip(name, e, "a broken link" if link else "vanished before it was read")
                    continue
                except OSError as err:
                    self._skip(name, e, f"cannot be read ({err.strerror})")
                    continue
                if not stat.S_ISREG(st.st_mode):
                    self._skip(name, e, "not a regular file")
                    continue
                sig = (st.st_size, st.st_mtime_ns)
                if sig != e.sig:  # new or still being written
                    e.sig, e.since, busy, last = sig, now, True, now
                elif st.st_size == 0:  # an empty file waits for content, but is no activity
                    if not e.warned and now - e.since >= self.settle_s:
                        logger.warning(
                            "frame %s is empty; waiting for content", show(self.folder / name)
                        )
                        e.warned = True
                elif now - e.since >= self.settle_s and now >= e.not_before:
                    ready.append(name)
                else:
                    busy = True
            for name in ready:
                self.entries[name].taken = True
                last = time.monotonic()
                yield self.folder / name
            idle = time.monotonic() - last
            if self.idle_timeout_s is not None and not ready and not busy:
                if idle >= self.idle_timeout_s:
                    logger.info("no new frame for %.1f s: stopping", idle)
                    return
            time.sleep(self.interval_s)


def camera_frames(spec: str) -> Iterator[np.ndarray]:
    try:
        import cv2
    except ImportError:
        raise FollowError(f"{spec} needs OpenCV: pip install opencv-python-headless") from None
    cap = cv2.VideoCapture(camera_index(spec))
    if not cap.isOpened():
        raise FollowError(f"cannot open {spec}: no such camera, or it is in use")
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield np.ascontiguousarray(bgr[..., ::-1])
    finally:
        cap.release()


def camera_index(spec: str) -> int:
    index = spec.split(":", 1)[1]
    if not re.fullmatch(r"\d{0,3}", index):
        raise FollowError(f"camera source must be camera:N with N = 0, 1, ..., got {spec!r}")
    return int(index or 0)
