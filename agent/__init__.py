"""cmp-agent: a NETCONF/YANG-modelled device agent that enrols and renews
certificates over CMPv2 (RFC 4210 as updated by RFC 9480, HTTP transport per
RFC 6712).

Importing the package changes nothing in the process: what makes the agent's
commands start faster is done by their entry point (:func:`agent.cli.prepare_process`).
"""

__version__ = "0.1.0"

#: the namespace of the YANG module cmp-agent-pki (yang/cmp-agent-pki.yang)
PKI_NS = "urn:cmp-agent:yang:cmp-agent-pki"
