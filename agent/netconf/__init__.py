"""NETCONF (RFC 6241) over SSH (RFC 6242): framing, RPC layer and server."""
