"""``<create-subscription>`` (RFC 5277 section 2.1.1): the ``NETCONF`` stream, no replay.

Events reach subscribers through :meth:`agent.netconf.server.NetconfServer.notify`.
"""

from __future__ import annotations

from lxml import etree

from ..context import Subscription
from ..errors import RpcError
from ..filters import check_filter_size
from .registry import RpcContext, check_params, child, text_param

NOTIFICATION_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
STREAM = "NETCONF"


def _n(name: str) -> str:
    return f"{{{NOTIFICATION_NS}}}{name}"


async def create_subscription(ctx: RpcContext, op: etree._Element) -> None:
    check_params(op, {_n("stream"), _n("filter"), _n("startTime"), _n("stopTime")})
    if ctx.session.subscription is not None:
        raise RpcError("in-use", "this session already has a subscription (RFC 5277 section 2.1.1)",
                       type="protocol")
    stream = text_param(op, NOTIFICATION_NS, "stream") or STREAM
    if stream != STREAM:
        raise RpcError("invalid-value", f"no event stream {stream!r}; the agent has {STREAM}",
                       type="protocol", info={"bad-element": "stream"})
    if child(op, NOTIFICATION_NS, "startTime") is not None:
        raise RpcError("operation-failed",
                       "replay is not supported: omit <startTime> (no :replay capability)",
                       type="protocol")
    stop = text_param(op, NOTIFICATION_NS, "stopTime")
    if stop is not None:
        raise RpcError("bad-element", "<stopTime> needs <startTime>, and replay is not supported",
                       type="protocol", info={"bad-element": "stopTime"})
    filter_el = child(op, NOTIFICATION_NS, "filter")
    if filter_el is not None and (filter_el.get("type") or "subtree") != "subtree":
        raise RpcError("bad-attribute", "notification filters must be subtree filters",
                       type="protocol", info={"bad-attribute": "type", "bad-element": "filter"})
    if filter_el is not None:
        check_filter_size(filter_el)  # it is applied to every event, on the loop
    ctx.session.subscription = Subscription(stream, filter_el)


OPERATIONS = {
    (NOTIFICATION_NS, "create-subscription"): create_subscription,
}
