"""Configuration datastores (RFC 6241): running, candidate, startup."""

from agent.datastore.changes import ChangeSummary
from agent.datastore.secrets import SecretBox
from agent.datastore.store import Datastores, DatastoreLoadError, Snapshot

__all__ = ["Datastores", "ChangeSummary", "Snapshot", "SecretBox", "DatastoreLoadError"]
