"""Attach the PKI service to a NETCONF server: RPCs, state data, notifications,
and the automatic update loop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent import PKI_NS
from agent.clock import Clock
from agent.datastore import Datastores, SecretBox
from agent.model import Model
from agent.netconf.server import NetconfServer
from agent.pki.autoupdate import AutoUpdater, UpdatePacing
from agent.pki.rpcs import handlers
from agent.pki.service import PkiService, ServiceSettings


@dataclass
class PkiRuntime:
    service: PkiService
    updater: AutoUpdater

    def start(self) -> None:
        """Start the automatic updates, which first read running's sessions into the
        service's view, a chunk at a time: called once the agent listens, so that this
        work overlaps the first clients' SSH handshakes instead of delaying them."""
        self.updater.start()

    async def stop(self) -> None:
        await self.updater.stop()
        await self.service.close()


def attach(
    server: NetconfServer,
    model: Model,
    datastores: Datastores,
    state_dir: Path,
    secrets: SecretBox,
    *,
    clock: Clock | None = None,
    settings: ServiceSettings | None = None,
    tick: float = 1.0,
    pacing: UpdatePacing | None = None,
) -> PkiRuntime:
    """Register the cmp-agent-pki RPCs and state on *server*; :meth:`PkiRuntime.start`
    starts auto-update."""
    service = PkiService(datastores, state_dir, secrets, clock=clock, notify=server.notify,
                         settings=settings)
    for name, handler in handlers(service, model).items():
        server.register_rpc(PKI_NS, name, handler)
    server.add_state_provider(service.state)
    return PkiRuntime(service, AutoUpdater(service, tick=tick, pacing=pacing))
