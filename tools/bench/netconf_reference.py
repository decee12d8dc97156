"""The reference NETCONF server of the benchmark: yuma123 ``netconfd`` behind OpenSSH.

Everything lives in a temporary directory: an empty startup configuration,
netconfd's UNIX socket and log, an sshd_config, a host key, and a client key
pair authorised for the current user. ``sshd -D`` runs in the foreground as
a child process on a free loopback port, with the ``netconf`` subsystem
(RFC 6242) served by ``netconf-subsystem``, which relays the session to
netconfd over the UNIX socket. Both processes are stopped by :meth:`stop`.

Two things have to pair up for netconfd to accept a session:

* ``netconf-subsystem --ncxserver-sockname=PORT@SOCK`` picks the socket by
  the server port of ``SSH_CONNECTION``, and
* netconfd accepts only sessions whose SSH server port is in its ``--port``
  list, 830 when there is none: without ``--port=PORT`` it closes every
  session on another port right after the ``<ncx-connect>`` message
  ("agt_sys.c:944 invalid internal value", "Session 1 closed").

The model loaded is the agent's own ``yang/cmp-agent-pki.yang`` when netconfd
can parse it, otherwise :func:`same_shape_module`, generated here.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from raw_client import Credentials

NETCONFD = "/usr/sbin/netconfd"
SSHD = "/usr/sbin/sshd"
NETCONF_SUBSYSTEM = "/usr/sbin/netconf-subsystem"
INSTALL_HINT = "apt-get install netconfd openssh-server"


class MissingTool(RuntimeError):
    """netconfd, netconf-subsystem, sshd or ssh-keygen is not installed."""


class ReferenceStartError(RuntimeError):
    """netconfd or sshd did not come up; the message carries their log."""


def missing_tools() -> list[str]:
    """The programs the reference needs that are not installed."""
    needed = [NETCONFD, NETCONF_SUBSYSTEM, SSHD]
    missing = [p for p in needed if not os.access(p, os.X_OK)]
    if shutil.which("ssh-keygen") is None:
        missing.append("ssh-keygen")
    return missing


def die_with_parent() -> None:
    """In a child before exec: get SIGTERM when the parent dies (Linux PR_SET_PDEATHSIG).

    So that a benchmark killed from outside leaves no server behind.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 == PR_SET_PDEATHSIG


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on *host* right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def same_shape_module() -> str:
    """A YANG 1.0 ``cmp-agent-pki`` with the configuration tree of issue 2.

    Same module name, namespace and data nodes as the agent's model, without
    the YANG 1.1 and NACM parts, for a netconfd that cannot parse the real one.
    """
    def leaf(name: str, type_: str, extra: str = "") -> str:
        end = "" if type_.endswith("}") else ";"
        return f"leaf {name} {{ type {type_}{end} {extra}}}\n"

    name64 = "string { length \"1..64\"; }"
    session = (
        "list cmp-session { key name;\n"
        + leaf("name", name64)
        + "leaf entity { type leafref { path \"/pki:pki/pki:entity/pki:name\"; } }\n"
        + leaf("ca-name", "string { length \"1..255\"; }")
        + "container server-url {\n" + leaf("url", "string { length \"1..255\"; }")
        + leaf("esc", "boolean", "default false; ") + "}\n"
        + "container local-key-pair {\n" + leaf("name", name64)
        + leaf("regenerate", "boolean", "default false; ")
        + leaf("key-bits", "uint16 { range \"2048 | 3072 | 4096\"; }", "default 2048; ") + "}\n"
        + "choice source {\n"
        + "case source-interface { " + leaf("source-interface", "string") + "}\n"
        + "case source-address { " + leaf("source-address", "inet:ip-address-no-zone") + "}\n"
        + "}\n"
        + leaf("integrity-algorithm", "enumeration { enum hmac-sha256; enum hmac-sha1; }",
               "default hmac-sha256; ")
        + leaf("verification-cert", "string")
        + leaf("origin-authentication-method",
               "enumeration { enum message-authentication-code; enum signature; }",
               "default message-authentication-code; ")
        + "container message-authentication-code {\n"
        + leaf("reference-value", "string { length \"1..128\"; pattern '[^?]*'; }")
        + leaf("secret-value", "string") + "}\n"
        + leaf("authentication-cert", "string")
        + "container auto-update {\n" + leaf("enabled", "boolean", "default false; ")
        + leaf("expire-time", "uint8 { range \"10..100\"; }", "default 50; ") + "}\n"
        + "}\n")
    entity = ("list entity { key name;\n" + leaf("name", name64) + leaf("common-name", "string")
              + leaf("country", "string { length \"2\"; }")
              + "".join(leaf(n, "string") for n in (
                  "state", "locality", "organization", "organization-unit", "email", "fqdn"))
              + leaf("ip-address", "inet:ip-address-no-zone") + "}\n")
    return (
        "module cmp-agent-pki {\n"
        "namespace \"urn:cmp-agent:yang:cmp-agent-pki\";\n"
        "prefix pki;\n"
        "import ietf-inet-types { prefix inet; }\n"
        "description \"Benchmark copy of the shape of the cmp-agent model.\";\n"
        "revision 2026-11-27 { description \"Generated by tools/bench.\"; }\n"
        "container pki {\n"
        + leaf("file-format", "enumeration { enum pem; enum der; }", "default pem; ")
        + leaf("weak-algorithms-enabled", "boolean", "default false; ")
        + entity + session
        + "}\n}\n")


def _ssh_keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL, timeout=30)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path.name}: no output)"


def _stop(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


@dataclass
class ReferenceServer:
    """A running netconfd + sshd pair; use as a context manager or call :meth:`stop`."""

    module: Path | None = None
    start_timeout: float = 20.0
    host: str = "127.0.0.1"
    port: int = 0
    model: str = ""
    workdir: Path = field(init=False)
    credentials: Credentials = field(init=False)
    _netconfd: subprocess.Popen | None = field(init=False, default=None)
    _sshd: subprocess.Popen | None = field(init=False, default=None)
    _tmp: tempfile.TemporaryDirectory | None = field(init=False, default=None)

    def __enter__(self) -> ReferenceServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start netconfd, then sshd; return when both accept connections."""
        missing = missing_tools()
        if missing:
            raise MissingTool(f"the reference server needs {', '.join(missing)}: {INSTALL_HINT}")
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-ref-")
        self.workdir = Path(self._tmp.name)
        try:
            user = pwd.getpwuid(os.getuid()).pw_name
            _ssh_keygen(self.workdir / "host_key")
            _ssh_keygen(self.workdir / "client_key")
            (self.workdir / "authorized_keys").write_bytes(
                (self.workdir / "client_key.pub").read_bytes())
            self.credentials = Credentials(user, client_key=str(self.workdir / "client_key"))
            self.port = self.port or free_port(self.host)
            self._start_netconfd(user)
            self._start_sshd()
        except BaseException:
            self.stop()
            raise

    def _start_netconfd(self, user: str) -> None:
        """netconfd with the agent's model, or the generated same-shape one if that fails."""
        failures = []
        candidates: list[tuple[Path, str]] = []
        if self.module is not None and self.module.is_file():
            candidates.append((self.module, f"{self.module.name} (the agent's own module)"))
        generated = self.workdir / "modules" / "cmp-agent-pki.yang"
        generated.parent.mkdir()
        generated.write_text(same_shape_module())
        candidates.append((generated, "generated same-shape cmp-agent-pki (YANG 1.0)"))
        for module, description in candidates:
            try:
                self._netconfd = self._spawn_netconfd(user, module)
                self.model = description
                if failures:
                    self.model += f"; {failures[0]}"
                return
            except ReferenceStartError as exc:
                errors = [line for line in str(exc).splitlines() if "rror" in line]
                failures.append(f"{module} did not load: {' / '.join(errors[-3:])}")
        raise ReferenceStartError("netconfd did not start:\n" + "\n".join(failures))

    def _spawn_netconfd(self, user: str, module: Path) -> subprocess.Popen:
        sock = self.workdir / "ncxserver.sock"
        sock.unlink(missing_ok=True)
        startup = self.workdir / "startup-cfg.xml"
        startup.write_text('<?xml version="1.0" encoding="UTF-8"?>\n'
                           '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>\n')
        log = self.workdir / "netconfd.log"
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        env = {"PATH": "/usr/sbin:/usr/bin:/bin", "HOME": str(home), "USER": user}
        proc = subprocess.Popen(
            [NETCONFD, f"--ncxserver-sockname={sock}", f"--port={self.port}",
             f"--superuser={user}", f"--startup={startup}", f"--module={module}",
             f"--log={log}", "--log-level=info"],
            cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent)
        deadline = time.monotonic() + self.start_timeout
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop(proc)
                raise ReferenceStartError(f"netconfd failed to start:\n{_tail(log, 200)}")
            time.sleep(0.02)
        return proc

    def _start_sshd(self) -> None:
        sock = self.workdir / "ncxserver.sock"
        config = self.workdir / "sshd_config"
        config.write_text(
            f"ListenAddress {self.host}:{self.port}\n"
            f"HostKey {self.workdir / 'host_key'}\n"
            "PidFile none\n"
            f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            # The temp dir is under /tmp (mode 1777), which StrictModes refuses.
            "StrictModes no\n"
            # Debian's stock sshd_config has UsePAM yes; keep the reference as deployed.
            f"UsePAM {'yes' if os.getuid() == 0 else 'no'}\n"
            "MaxStartups 100:30:200\n"
            "MaxSessions 100\n"
            "LogLevel INFO\n"
            f'Subsystem netconf "{NETCONF_SUBSYSTEM} '
            f'--ncxserver-sockname={self.port}@{sock}"\n')
        if os.getuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        log = self.workdir / "sshd.log"
        test = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True,
                              timeout=30)
        if test.returncode != 0:
            raise ReferenceStartError(f"sshd rejected its configuration:\n{test.stderr}")
        with open(log, "wb") as out:
            self._sshd = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent)
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return
            except OSError:
                if self._sshd.poll() is not None or time.monotonic() > deadline:
                    raise ReferenceStartError(f"sshd did not start:\n{_tail(log)}") from None
                time.sleep(0.02)

    def root_pids(self) -> list[int]:
        """The long-lived server processes: netconfd and the sshd listener.

        Per-session processes (sshd's monitor and session child, the
        ``netconf-subsystem`` relay) are their descendants.
        """
        return [p.pid for p in (self._netconfd, self._sshd) if p is not None]

    def logs(self) -> str:
        """The tails of netconfd's and sshd's logs (for error reports)."""
        return (f"--- netconfd.log\n{_tail(self.workdir / 'netconfd.log')}\n"
                f"--- sshd.log\n{_tail(self.workdir / 'sshd.log')}")

    def stop(self) -> None:
        """Stop sshd and netconfd and remove the temporary directory."""
        _stop(self._sshd)
        _stop(self._netconfd)
        self._sshd = self._netconfd = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
