"""The agent's SSH host key, checked as OpenSSH's client checks it (``cmp-agent cli``).

The password and the MAC secrets typed at the CLI go to whoever answers: before any of it
is sent, the key the server presents must be one a known_hosts file lists for it
(``/etc/ssh/ssh_known_hosts``, then ``~/.ssh/known_hosts`` or ``--known-hosts FILE``,
OpenSSH's GlobalKnownHostsFile and UserKnownHostsFile), or, on a loopback address, the
key in the local agent's state directory (the server proves it holds that private key,
which only the account that reads it, or root, could give it). A host no file lists is
refused with how to trust it, unless ``--accept-new-host-key`` (OpenSSH's
``StrictHostKeyChecking=accept-new``) adds its key to the user's file; a host listed with
other keys is refused loudly whatever the options: the key changed, or someone is in
between.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

GLOBAL_KNOWN_HOSTS = Path("/etc/ssh/ssh_known_hosts")
HOST_KEY_FILE = "ssh_host_ed25519_key"


def user_known_hosts() -> Path:
    return Path("~/.ssh/known_hosts").expanduser()


def host_pattern(host: str, port: int) -> str:
    """How known_hosts names *host*: ``[host]:port`` unless the port is 22."""
    return host if port == 22 else f"[{host}]:{port}"


def describe(key: asyncssh.SSHKey) -> str:
    """``ED25519 key SHA256:...``, as OpenSSH names a key."""
    kind = key.get_algorithm().removeprefix("ssh-").removeprefix("ecdsa-sha2-").upper()
    return f"{kind} key {key.get_fingerprint()}"


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%")[0]).is_loopback
    except ValueError:
        return False


def local_host_key(state_dir: Path) -> asyncssh.SSHKey | None:
    """The public host key of the agent whose state directory is *state_dir*, if this
    account may read it (not if the agent runs as someone else)."""
    try:
        return asyncssh.read_private_key(state_dir / HOST_KEY_FILE).convert_to_public()
    except (OSError, asyncssh.KeyImportError):
        return None


class HostKeyRefused(Exception):
    """The server's host key is not trusted; the message says why and what to do."""


@dataclass
class HostKeyPolicy:
    """Decides whether to trust the key a server presents (:meth:`check`)."""

    host: str
    port: int
    #: the user's known_hosts (~/.ssh/known_hosts, or --known-hosts FILE): read, and
    #: where --accept-new-host-key writes
    user_file: Path
    accept_new: bool = False
    #: the state directory whose host key is trusted on a loopback address
    state_dir: Path | None = None
    global_file: Path = GLOBAL_KNOWN_HOSTS
    #: the refusal, once :meth:`check` returned False
    refusal: HostKeyRefused | None = None
    #: what to tell the user on stderr although the key is trusted (a key just added)
    notices: list[str] = field(default_factory=list)

    def check(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        try:
            self._check(host, addr, port, key)
        except HostKeyRefused as refusal:
            self.refusal = refusal
            return False
        return True

    def _check(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> None:
        name = host_pattern(self.host, self.port)
        if (self.state_dir is not None and _is_loopback(addr)
                and local_host_key(self.state_dir) == key):
            return
        listed: list[tuple[Path, list[asyncssh.SSHKey]]] = []
        for path in (self.global_file, self.user_file):
            try:
                known = asyncssh.read_known_hosts(str(path))
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as exc:
                raise HostKeyRefused(f"cannot read the known hosts file {path}: {exc}") from None
            # asyncssh's match() falls back to the entries without a port: OpenSSH does not
            # (127.0.0.1's sshd on port 22 says nothing about an agent on port 8830)
            keys, _ca, revoked, *_ = known._match(self.host, addr, port)  # noqa: SLF001
            if key in revoked:
                raise HostKeyRefused(f"the host key of {name} ({describe(key)}) is marked"
                                     f" @revoked in {path}: refused")
            if key in keys:
                return
            if keys:
                listed.append((path, list(dict.fromkeys(keys))))  # host and address: once
        if listed:
            raise HostKeyRefused(self._changed(name, key, listed))
        if self.accept_new:
            self._add(name, key)
            return
        raise HostKeyRefused(self._unknown(name, key))

    def _changed(self, name: str, key: asyncssh.SSHKey,
                 listed: list[tuple[Path, list[asyncssh.SSHKey]]]) -> str:
        where = "; ".join(f"{path}: {', '.join(describe(k) for k in keys)}" for path, keys in listed)
        files = " ".join(f"-f {shlex.quote(str(path))}" for path, _ in listed[-1:])
        return (
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
            "@    WARNING: THE AGENT'S HOST KEY HAS CHANGED!            @\n"
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
            f"{name} presented {describe(key)}, but the known hosts list other keys for it"
            f" ({where}).\nSomeone could be intercepting the connection (man in the middle),"
            " or the agent's host key was replaced. Nothing was sent to it (no password, no"
            " secret).\nIf the change is expected, check the new key against the agent's"
            f" (ssh-keygen -lf <state-dir>/{HOST_KEY_FILE} on its host), then remove the old"
            f" one: ssh-keygen -R {shlex.quote(name)} {files}")

    def _unknown(self, name: str, key: asyncssh.SSHKey) -> str:
        port = "" if self.port == 22 else f"-p {self.port} "
        return (
            f"the host key of {name} is not known: it presented {describe(key)}, which no"
            f" known hosts file lists ({self.global_file}, {self.user_file}). Nothing was sent"
            " to it.\nCheck it against the agent's (cmp-agent serve prints its host key at"
            f" start; ssh-keygen -lf <state-dir>/{HOST_KEY_FILE} on its host), then trust it:"
            f" run again with --accept-new-host-key (adds it to {self.user_file}), or add it"
            f" yourself: ssh-keyscan -t ed25519 {port}{self.host} >> {self.user_file}")

    def _add(self, name: str, key: asyncssh.SSHKey) -> None:
        algorithm, blob = key.export_public_key().decode().split()[:2]
        line = f"{name} {algorithm} {blob}\n"
        try:
            self.user_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.user_file, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a+b") as f:
                f.seek(0, os.SEEK_END)
                if f.tell():  # a last line without its newline would swallow ours
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        line = "\n" + line
                f.write(line.encode("ascii"))
        except OSError as exc:
            self.notices.append(f"Warning: {name} ({describe(key)}) trusted for this"
                                f" connection only: cannot add it to {self.user_file}: {exc}")
            return
        self.notices.append(f"Warning: Permanently added {name} ({describe(key)}) to the"
                            f" list of known hosts ({self.user_file}).")
