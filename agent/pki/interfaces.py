"""``source interface``: the address of a local interface (seed step 8).

An interface may have IPv4 addresses, IPv6 addresses or both. The address used is
of the server's family (a connection from an IPv6 address to an IPv4 server cannot
be made), IPv4 first for a host name; among IPv6 addresses a global one comes
before a link-local one, which needs the interface as its zone.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from pathlib import Path

from agent.netconf.errors import RpcError

_SIOCGIFADDR = 0x8915  # Linux <linux/sockios.h>
#: Linux lists every IPv6 address here: address, ifindex, prefix, scope, flags, name
IF_INET6 = Path("/proc/net/if_inet6")


def ipv4_address(name: str) -> str | None:
    """The primary IPv4 address of *name*; None when it has none. Raises when
    the interface does not exist."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()))
        except OSError as exc:
            if exc.errno == 19:  # ENODEV
                raise _missing(name, "does not exist") from None
            return None  # EADDRNOTAVAIL: no IPv4 address
    return socket.inet_ntoa(answer[20:24])


def ipv6_addresses(name: str, listing: Path = IF_INET6) -> list[str]:
    """The IPv6 addresses of *name*, global ones first; link-local ones carry the
    interface as their zone (``fe80::1%eth0``)."""
    try:
        lines = listing.read_text().splitlines()
    except OSError:  # no IPv6 in this kernel
        return []
    found: list[tuple[bool, str]] = []
    for line in lines:
        fields = line.split()
        if len(fields) != 6 or fields[5] != name:
            continue
        address = ipaddress.IPv6Address(int(fields[0], 16))
        if address.is_link_local:
            found.append((True, f"{address}%{name}"))
        else:
            found.append((False, str(address)))
    return [text for _, text in sorted(found, key=lambda item: item[0])]


def interface_address(name: str, server_host: str | None = None,
                      listing: Path = IF_INET6) -> str:
    """The address of interface *name* to connect to *server_host* from.

    The seed requires "a Layer 3 interface [that] has an IP address configured";
    one without an address of the server's family is refused with that reason.
    """
    if not name or len(name) > 15 or "/" in name:
        raise RpcError("invalid-value", f"{name!r} is not a network interface name")
    family = None
    if server_host:
        try:
            family = ipaddress.ip_address(server_host.strip("[]")).version
        except ValueError:
            family = None  # a host name: either family
    v4 = ipv4_address(name) if family in (None, 4) else None
    if v4 is not None:
        return v4
    v6 = ipv6_addresses(name, listing) if family in (None, 6) else []
    if v6:
        return v6[0]
    if family is None and not _exists(name):
        raise _missing(name, "does not exist")
    wanted = {None: "no IP address", 4: "no IPv4 address", 6: "no IPv6 address"}[family]
    raise _missing(name, f"has {wanted} configured")


def _exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def _missing(name: str, reason: str) -> RpcError:
    return RpcError(
        "operation-failed",
        f"source-interface {name!r} {reason}: configure an address on it or use source-address",
    )
