"""``--mavlink URL``: checked (scheme, host resolvable, port 1..65535, serial device present)
before any frame is read, without opening anything.

Forms: ``udpout:HOST:PORT`` (send to a ground station / router), ``udpin:[HOST]:PORT`` and
``udp:`` (listen; replies go to whoever sent to us), ``tcp:HOST:PORT``, ``tcpin:[HOST]:PORT``,
or a serial device ``/dev/ttyACM0[,BAUD]`` (``COM3[,BAUD]`` on Windows; default 115200 baud).

Usage::

    target = parse_mavlink_url("udpout:127.0.0.1:14550")   # MavlinkError when unusable
    target.device, target.kind, target.baud
"""

from __future__ import annotations

import os
import re
import socket
import stat
from dataclasses import dataclass

from d4g_edge.cli.follow.errors import MavlinkError


@dataclass(frozen=True)
class MavlinkTarget:
    """A checked ``--mavlink`` URL: what pymavlink opens, and how."""

    url: str  # as given
    device: str  # what pymavlink's mavlink_connection gets
    kind: str  # udpout | udpin | tcp | tcpin | serial
    baud: int = 115200


_URL_FORMS = (
    "udpout:HOST:PORT, udpin:[HOST]:PORT, udp:[HOST]:PORT, tcp:HOST:PORT, tcpin:[HOST]:PORT, "
    "or a serial device /dev/ttyACM0[,BAUD] (COM3[,BAUD] on Windows)"
)
_NET = {"udpout": "udpout", "udpin": "udpin", "udp": "udpin", "tcp": "tcp", "tcpin": "tcpin"}


def parse_mavlink_url(url: str) -> MavlinkTarget:
    """Check ``url`` without opening it: scheme, host (resolved), port, serial device."""
    if not isinstance(url, str) or not url.strip():
        raise MavlinkError(f"--mavlink is empty; expected {_URL_FORMS}")
    if url != url.strip():
        raise MavlinkError(f"--mavlink {url!r} has leading or trailing spaces; remove them")
    scheme, _, rest = url.partition(":")
    if scheme in _NET:
        return _net_target(url, _NET[scheme], rest)
    return _serial_target(url)


def _net_target(url: str, kind: str, rest: str) -> MavlinkTarget:
    host, sep, port_text = rest.rpartition(":")
    if not sep or ":" in host:
        raise MavlinkError(
            f"--mavlink {url!r}: expected {kind}:HOST:PORT (IPv4 address or name; pymavlink "
            "has no IPv6), e.g. udpout:127.0.0.1:14550"
        )
    if not re.fullmatch(r"\d{1,5}", port_text) or not 1 <= int(port_text) <= 65535:
        raise MavlinkError(f"--mavlink {url!r}: the port must be 1..65535, got {port_text!r}")
    port = int(port_text)
    listening = kind in ("udpin", "tcpin")
    if not host and not listening:
        raise MavlinkError(f"--mavlink {url!r}: {kind} needs the host to send to, e.g. 127.0.0.1")
    try:
        socket.getaddrinfo(host or "0.0.0.0", port, socket.AF_INET)
    except (OSError, UnicodeError) as err:
        raise MavlinkError(
            f"--mavlink {url!r}: host {host!r} cannot be resolved to an IPv4 address "
            f"({getattr(err, 'strerror', None) or err}); check the address or name"
        ) from None
    return MavlinkTarget(url, f"{kind}:{host or '0.0.0.0'}:{port}", kind)


def _serial_target(url: str) -> MavlinkTarget:
    device, sep, baud_text = url.partition(",")
    windows_port = re.fullmatch(r"COM\d{1,3}", device, re.IGNORECASE)
    if not (device.startswith("/dev/") or windows_port):
        raise MavlinkError(f"--mavlink {url!r} is not a MAVLink URL; expected {_URL_FORMS}")
    if sep and not (re.fullmatch(r"\d{3,7}", baud_text) and int(baud_text) > 0):
        raise MavlinkError(
            f"--mavlink {url!r}: the baud rate after ',' must be a positive integer like 57600 "
            f"or 115200, got {baud_text!r}"
        )
    if windows_port and os.name != "nt":
        raise MavlinkError(
            f"--mavlink {url!r}: COM ports exist on Windows; here a serial device is a path "
            "like /dev/ttyACM0 or /dev/ttyUSB0"
        )
    if not windows_port:
        try:
            mode = os.stat(device).st_mode
        except OSError as err:
            raise MavlinkError(
                f"--mavlink {url!r}: serial device {device} {err.strerror.lower()}; is the "
                "autopilot plugged in? (ls /dev/ttyACM* /dev/ttyUSB* /dev/serial/by-id)"
            ) from None
        if not stat.S_ISCHR(mode):
            raise MavlinkError(f"--mavlink {url!r}: {device} is not a serial (character) device")
    try:
        import serial  # noqa: F401  # pymavlink opens serial ports with pyserial
    except ImportError:
        raise MavlinkError(
            f"--mavlink {url!r} needs pyserial: pip install 'd4g-edge[mavlink]'"
        ) from None
    return MavlinkTarget(url, device, "serial", int(baud_text) if sep else 115200)
