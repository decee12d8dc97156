"""``<get-schema>`` of ietf-netconf-monitoring (RFC 6022 section 3.1)."""

from __future__ import annotations

from lxml import etree

from ..errors import RpcError
from ..state import NCM_NS
from .registry import RpcContext, check_params, text_param


async def get_schema(ctx: RpcContext, op: etree._Element) -> etree._Element:
    check_params(op, {f"{{{NCM_NS}}}{p}" for p in ("identifier", "version", "format")})
    identifier = text_param(op, NCM_NS, "identifier")
    if not identifier:
        raise RpcError("missing-element", "<get-schema> needs the <identifier> of a module",
                       type="protocol", info={"bad-element": "identifier"})
    fmt = text_param(op, NCM_NS, "format")
    if fmt is not None and fmt.rpartition(":")[2] != "yang":
        raise RpcError("invalid-value", f"schema format {fmt!r} is not available; use yang",
                       type="protocol", info={"bad-element": "format"})
    version = text_param(op, NCM_NS, "version") or None
    data = etree.Element(f"{{{NCM_NS}}}data", nsmap={None: NCM_NS})
    data.text = ctx.server.model.module_text(identifier, version)
    return data


OPERATIONS = {
    (NCM_NS, "get-schema"): get_schema,
}
