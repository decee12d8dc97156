"""``source interface``: the address of a local interface (seed step 8)."""

from __future__ import annotations

import fcntl
import socket
import struct

from agent.netconf.errors import RpcError

_SIOCGIFADDR = 0x8915  # Linux <linux/sockios.h>


def interface_address(name: str) -> str:
    """The primary IPv4 address of interface *name* (e.g. ``lo`` -> 127.0.0.1).

    The seed requires "a Layer 3 interface [that] has an IP address configured";
    one without an address is refused with that reason.
    """
    if not name or len(name) > 15 or "/" in name:
        raise RpcError("invalid-value", f"{name!r} is not a network interface name")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()))
        except OSError as exc:
            reason = "does not exist" if exc.errno == 19 else "has no IPv4 address configured"
            raise RpcError(
                "operation-failed",
                f"source-interface {name!r} {reason}: configure an address on it"
                " or use source-address",
            ) from None
    return socket.inet_ntoa(answer[20:24])
