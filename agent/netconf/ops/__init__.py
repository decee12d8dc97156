"""The operations of the NETCONF server, one module per standard.

* :mod:`.base` - RFC 6241 section 7 (get, get-config, edit-config, copy-config,
  delete-config, lock, unlock, close-session, kill-session) and the
  ``:candidate`` / ``:validate`` operations of section 8.
* :mod:`.commit` - ``<commit>`` and ``<cancel-commit>`` with confirmed commit
  (RFC 6241 sections 8.3 and 8.4).
* :mod:`.monitoring` - ``<get-schema>`` (RFC 6022 section 3.1).
* :mod:`.notifications` - ``<create-subscription>`` (RFC 5277 section 2.1).
"""

from __future__ import annotations

from . import base, commit, monitoring, notifications
from .registry import RpcRegistry

#: operations that only read (get-config, get, get-schema): their successes are
#: logged at DEBUG, every change, error and session event at INFO
RETRIEVALS = frozenset(f"{{{namespace}}}{name}" for namespace, name in (
    (base.NC_NS, "get-config"), (base.NC_NS, "get"), (monitoring.NCM_NS, "get-schema")))


def register_standard_operations(registry: RpcRegistry) -> None:
    """Register every standard operation in *registry*."""
    for module in (base, commit, monitoring, notifications):
        for (namespace, name), handler in module.OPERATIONS.items():
            registry.register(namespace, name, handler)
