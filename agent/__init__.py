"""cmp-agent: a NETCONF/YANG-modelled device agent that enrols and renews
certificates over CMPv2 (RFC 4210 as updated by RFC 9480, HTTP transport per
RFC 6712)."""

import atexit

from agent.lazyimports import defer, defer_elementpath
from agent.methodcache import install as install_method_cache

__version__ = "0.1.0"

#: the namespace of the YANG module cmp-agent-pki (yang/cmp-agent-pki.yang)
PKI_NS = "urn:cmp-agent:yang:cmp-agent-pki"

# before anything imports yangson (issue 11: start-up time)
defer_elementpath()
defer("urllib.request")
# before any of the agent's dataclasses is made; what a process compiled is kept at its exit
atexit.register(install_method_cache().save)
