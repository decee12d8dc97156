"""Why a CMP transaction failed: one name per cause, shared by the engine
(:mod:`agent.cmp.transaction`) and what reports its results (the PKI service's
counters and error-app-tags), which need the names without loading the engine."""

from __future__ import annotations

import enum


class FailureKind(enum.Enum):
    """Why a transaction failed."""

    REJECTED = "rejected"  # the CA answered with a negative PKIStatus
    ERROR_MESSAGE = "error-message"  # the CA answered with an error message
    PROTECTION = "protection"  # a response was unprotected or its protection invalid
    PROTOCOL = "protocol"  # malformed or unexpected response (type, transactionID, nonce)
    #: we refused the issued certificate (another key, a subject or SAN not asked for,
    #: no chain to a trust anchor) and said so in certConf
    CERTIFICATE_REJECTED = "certificate-rejected"
    TRANSPORT = "transport"  # HTTP or network failure
    TIMEOUT = "timeout"  # the total timeout elapsed (including polling)
    CANCELLED = "cancelled"  # ended on our side (agent shutdown)
