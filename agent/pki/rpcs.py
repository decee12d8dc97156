"""The PKI module's RPCs, bound to the NETCONF server.

Input is parsed and checked by yangson against the RPC's ``input`` statement
(types, ranges, mandatory leaves, defaults), so the handlers receive plain
values that the YANG module has already vouched for.
"""

from __future__ import annotations

import asyncio
import base64
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from typing import Any

from lxml import etree
from yangson.enumerations import ContentType
from yangson.exceptions import (
    RawMemberError,
    RawTypeError,
    SchemaError,
    YangsonException,
    YangTypeError,
)

from agent import PKI_NS
from agent.model import Model
from agent.netconf.errors import RpcError
from agent.pki.service import PkiService
from agent.pki.stores import generate_key
from agent.xmltext import xml_text

_REQUESTS = {
    "cmp-initial-request": "ir",
    "cmp-certificate-request": "cr",
    "cmp-keyupdate-request": "kur",
    "cmp-pkcs10-request": "p10cr",
}


def parse_input(model: Model, operation: etree._Element) -> dict[str, Any]:
    """The RPC's input as a dict of leaf values (RFC 7951 names), defaults added."""
    name = etree.QName(operation).localname
    wrapper = ET.Element(f"{{{PKI_NS}}}input")
    for child in operation:
        if isinstance(child.tag, str):
            wrapper.append(ET.fromstring(etree.tostring(child, with_tail=False)))
    try:
        inst = model.datamodel.from_xml(wrapper, subschema=f"cmp-agent-pki:{name}")
        node = inst["cmp-agent-pki:input"].add_defaults()
        node.validate(ctype=ContentType.all)
    except RawMemberError as exc:
        element = exc.path.rsplit("/", 1)[-1]
        raise RpcError("unknown-element", f"<{name}> has no input parameter {element!r}",
                       type="protocol", info={"bad-element": element}) from None
    except RawTypeError as exc:
        leaf = exc.path.rsplit("/", 1)[-1]
        raise RpcError("invalid-value", f"<{name}>: {leaf}: {exc.message}",
                       info={"bad-element": leaf}) from None
    except YangTypeError as exc:
        leaf = str(exc.instance.instance_route()).rsplit("/", 1)[-1]
        raise RpcError("invalid-value",
                       f"<{name}>: {leaf} {exc.instance.value} is {exc.message or exc.tag}",
                       info={"bad-element": leaf}) from None
    except SchemaError as exc:
        missing = (exc.message or "").removeprefix("expected ").strip("'")
        raise RpcError("missing-element", f"<{name}> needs the input parameter {missing}",
                       type="protocol", info={"bad-element": missing}) from None
    except YangsonException as exc:
        raise RpcError("invalid-value", f"<{name}>: {exc}") from None
    return node.raw_value()


def output_leaves(leaves: dict[str, object]) -> list[etree._Element]:
    """RPC output elements from leaf name -> value (a list for a leaf-list, bytes as
    base64 for a binary leaf, None left out; text as XML can carry it: :func:`xml_text`)."""
    out = []
    for name, value in leaves.items():
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            el = etree.Element(f"{{{PKI_NS}}}{name}", nsmap={None: PKI_NS})
            el.text = base64.b64encode(item).decode() if isinstance(item, bytes) else xml_text(str(item))
            out.append(el)
    return out


Handler = Callable[[Any, etree._Element], Awaitable[list[etree._Element] | None]]


def handlers(service: PkiService, model: Model) -> dict[str, Handler]:
    """Operation name -> NETCONF handler, for every RPC of cmp-agent-pki."""
    loop_run = lambda fn, *args: asyncio.get_running_loop().run_in_executor(None, fn, *args)  # noqa: E731

    def request(kind: str) -> Handler:
        async def handle(ctx, operation):
            args = parse_input(model, operation)
            outcome = await service.request(args["session-name"], kind)
            if outcome.status == "failure":
                raise outcome.rpc_error()
            return outcome.to_xml()

        return handle

    async def revocation_request(ctx, operation):
        args = parse_input(model, operation)
        leaves = await service.revoke(args["session-name"], args["certificate-file"], args["reason"])
        return output_leaves(leaves)

    async def general_request(ctx, operation):
        args = parse_input(model, operation)
        return output_leaves(await service.general(args["session-name"], args["info-type"]))

    async def clear_statistics(ctx, operation):
        service.clear_statistics(parse_input(model, operation).get("session-name"))

    async def key_pair_create(ctx, operation):
        args = parse_input(model, operation)
        if service.keys.exists(args["name"]):
            raise RpcError("data-exists", f"key pair {args['name']!r} already exists:"
                           " delete it first with key-pair-delete")
        key = await loop_run(generate_key, args["algorithm"], args["key-bits"], args["curve"])
        service.keys.save(args["name"], key)

    async def key_pair_delete(ctx, operation):
        service.keys.delete(parse_input(model, operation)["name"])

    async def key_pair_import(ctx, operation):
        args = parse_input(model, operation)
        service.keys.import_pem(args["name"], args["private-key"], args["overwrite"])

    async def certificate_import(ctx, operation):
        args = parse_input(model, operation)
        service.certs.import_data(args["name"], args["data"], args["overwrite"],
                                  args["trust-anchor"])
        service.on_store_change()

    async def certificate_delete(ctx, operation):
        service.certs.delete(parse_input(model, operation)["name"])
        service.on_store_change()

    table: dict[str, Handler] = {name: request(kind) for name, kind in _REQUESTS.items()}
    table.update({
        "cmp-revocation-request": revocation_request,
        "cmp-general-request": general_request,
        "clear-statistics": clear_statistics,
        "key-pair-create": key_pair_create,
        "key-pair-delete": key_pair_delete,
        "key-pair-import": key_pair_import,
        "certificate-import": certificate_import,
        "certificate-delete": certificate_delete,
    })
    return table
