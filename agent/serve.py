"""Run the NETCONF agent: ``cmp-agent serve [--host H] [--port P] [--state-dir DIR]``.

On first start the state directory is created with an SSH host key and an
``admin`` user whose random password is written to
``<state-dir>/initial-admin-password`` (mode 0600) and printed once if stdout is
a terminal (else only that file is named: a service's stdout is a log others
read, e.g. systemd's journal, group adm); ``admin`` is in the NACM
group ``admin``, whose rule-list permits everything (RFC 8341). The account
the agent runs as is the recovery user: its NETCONF sessions (if it is added
with ``cmp-agent user add``) bypass NACM (RFC 8341 section 3.4). The agent
listens on loopback unless told otherwise, logs to stderr and
``<state-dir>/agent.log``, and prints ``listening on HOST:PORT`` once it
accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import logging.handlers
import os
import pickle
import pwd
import secrets
import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from .lazyimports import native_libraries_from_loader_cache
from .mallocarenas import limit_arenas

with native_libraries_from_loader_cache():  # asyncssh's native libraries, found quicker
    import asyncssh
from yangson.exceptions import YangsonException

from .atomic import atomic_write, check_private_tree, ensure_directory, remove_temporaries
from .modelcache import ModelCache
from .netconf.nacm import ADMIN_GROUP
from .netconf.users import UserEntry, UserStore, hash_password

if TYPE_CHECKING:
    from .pki.autoupdate import UpdatePacing
    from .model import Model

log = logging.getLogger("agent")

#: seconds (Python's default is 0.005)
SWITCH_INTERVAL = 0.0005


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/cmp-agent``, else ``~/.local/state/cmp-agent``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cmp-agent"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8830,
                        help="TCP port for NETCONF over SSH (default: 8830; 0 picks a free one)")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help=f"configuration, keys, users and logs (default: {default_state_dir()})")
    parser.add_argument("--log-level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="log verbosity (default: INFO: sessions, changes, errors; DEBUG"
                        " adds every successful get, get-config and get-schema)")
    parser.add_argument("--cmp-reply-wait", type=float, default=30.0, metavar="SECONDS",
                        help="how long a CMP request RPC waits for the CA before it answers"
                        " 'waiting' and reports the result by notification (default: 30)")
    parser.add_argument("--xpath-filter-seconds", type=float, default=10.0, metavar="SECONDS",
                        help="how long one XPath filter may be evaluated before the request"
                        " is answered 'filter too expensive' (default: 10)")
    parser.add_argument("--max-auth-tries", type=_positive_int, default=6, metavar="N",
                        help="failed authentication attempts after which a connection is"
                        " closed, as sshd's MaxAuthTries (default: 6)")
    parser.add_argument("--max-startups", type=_positive_int, default=32, metavar="N",
                        help="connections that may be unauthenticated at once; more are"
                        " closed at once, as sshd's MaxStartups (default: 32)")
    parser.add_argument("--per-source-max-startups", type=_positive_int, default=None,
                        metavar="N", help="of those, how many one source address (IPv6: one"
                        " /64) may hold; more from it are closed at once, as sshd's"
                        " PerSourceMaxStartups (default: --max-startups less a quarter, 24)")
    parser.add_argument("--login-grace-time", type=_non_negative, default=20.0,
                        metavar="SECONDS", help="time to authenticate before the connection"
                        " is closed, as sshd's LoginGraceTime (default: 20)")
    parser.add_argument("--keyboard-interactive", action="store_true",
                        help="also accept the password through keyboard-interactive"
                        " authentication (default: password and public key only)")
    parser.add_argument("--auto-update-concurrency", type=_positive_int, default=8, metavar="N",
                        help="automatic certificate updates run against the CAs at once; more"
                        " that fall due wait their turn (default: 8)")
    parser.add_argument("--auto-update-jitter", type=_non_negative, default=300.0,
                        metavar="SECONDS", help="each certificate's automatic update moves later"
                        " by a part of this drawn from a hash of session and certificate (at"
                        " most a tenth of its remaining validity), so certificates issued"
                        " together are not renewed in the same second (default: 300)")
    parser.add_argument("--recovery-user", default=None, metavar="NAME",
                        help="the user whose sessions bypass access control (RFC 8341 section"
                        " 3.4; default: the account the agent runs as,"
                        f" {_process_user()})")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _process_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


#: prctl(2) option numbers (linux/prctl.h)
PR_SET_DUMPABLE = 4


def no_core_dumps() -> None:
    """Make no core dump of this process: it holds MAC secrets and private keys in clear,
    which a dump would copy to wherever the system keeps crashes (a file in the working
    directory, systemd-coredump, a crash reporter that uploads them). RLIMIT_CORE 0 (hard
    too, so a child cannot raise it) stops the kernel's core files and tells a core_pattern
    pipe handler (systemd-coredump) to store none; PR_SET_DUMPABLE 0 stops every dump and
    keeps other processes of the same user from tracing it, as ssh-agent and gpg-agent do.
    Both are best effort: a system without them keeps its own settings."""
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (OSError, ValueError):
        pass
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        except (OSError, AttributeError):
            pass


def run(args: argparse.Namespace) -> int:
    no_core_dumps()  # before any secret is read
    limit_arenas()  # before any thread of the agent's allocates
    state_dir: Path = (args.state_dir or default_state_dir()).expanduser().resolve()
    try:  # an agent still running on the port is reported at once, before the start-up work
        check_address_free(args.host, args.port)
    except OSError as exc:
        print(cannot_listen_message(args.host, args.port, exc), file=sys.stderr)
        return 1
    cache = ModelCache(state_dir / MODEL_CACHE)
    try:  # a broken installation is reported before anything is written
        model = load_model(cache)
    except (ImportError, OSError, ValueError, YangsonException) as exc:
        print(f"cmp-agent: cannot load the YANG model: {exc}", file=sys.stderr)
        return 1
    # The model lives as long as the agent, and was unpickled with the cyclic collector
    # paused (modelcache), so all its objects sit in the youngest generation: frozen now,
    # the young collections of the start-up do not walk and promote them (GC CPU until
    # the first <hello> with 1,000 sessions: 6.6 ms, 11.3 ms without; median of 7
    # interleaved starts). The one freeze of start-up: what is built after it (datastores,
    # server) is frozen by the PKI service once its first view of running is read, right
    # after the agent listens (a freeze there as well saved nothing measurable).
    gc.freeze()
    try:
        first_password = prepare_state_dir(state_dir)
    except OSError as exc:
        print(f"cmp-agent: cannot set up the state directory {state_dir}: {exc}", file=sys.stderr)
        return 1
    _setup_logging(state_dir, args.log_level)
    _keep_compiled_model(cache, model)
    for orphan in remove_temporaries(state_dir):
        log.warning("removed %s, left by a write that a crash interrupted", orphan)
    if first_password is not None:
        print(first_start_message(first_password, state_dir / "initial-admin-password",
                                  sys.stdout.isatty()), flush=True)
    try:
        from .pki.autoupdate import UpdatePacing

        pacing = UpdatePacing(args.auto_update_concurrency,
                              timedelta(seconds=args.auto_update_jitter))
        # Worker threads (commit validation, CMP transactions, filters) hold the GIL
        # for at most this long when the event loop wants it: the loop's latency,
        # not their throughput, decides how responsive every session is.
        sys.setswitchinterval(SWITCH_INTERVAL)
        return asyncio.run(_serve(model, args, state_dir, pacing))
    except KeyboardInterrupt:
        return 0


def cannot_listen_message(host: str, port: int, exc: OSError) -> str:
    return (f"cmp-agent: cannot listen on {host}:{port}: {exc.strerror or exc}"
            " (another agent running? choose another --port)")


def check_address_free(host: str, port: int) -> None:
    """Raise the :class:`OSError` that listening on *host*:*port* would raise because the
    address is taken (or the host unknown), by binding each of its addresses as asyncio's
    ``create_server`` does (SO_REUSEADDR, IPv6 only on IPv6 sockets) and closing them
    again: checked before the YANG model is loaded, an agent still running on the port
    is reported at once, not after the start-up. Port 0 is always free. The agent then
    listens as before: an address taken in between is reported then, the same way."""
    if port == 0:
        return
    import socket

    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    for family, kind, proto, _, address in dict.fromkeys(infos):
        try:
            probe = socket.socket(family, kind, proto)
        except OSError:  # a family this system lacks: asyncio skips it too
            continue
        with probe:
            if os.name == "posix" and sys.platform != "cygwin":
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as err:  # worded as asyncio's create_server words it
                raise OSError(err.errno, f"error while attempting to bind on address"
                              f" {address!r}: {(err.strerror or str(err)).lower()}") from None


def load_model(cache: ModelCache | None = None) -> Model:
    """The agent's YANG model, parsed and checked by yangson (package data and pyang's
    modules), or as *cache* holds it compiled from the same modules."""
    from .model import Model

    return Model.load(cache)


#: the compiled model in the state directory (:mod:`agent.modelcache`)
MODEL_CACHE = "compiled-model.pickle"


def _keep_compiled_model(cache: ModelCache, model: Model) -> None:
    """Write the model just compiled to *cache* for the next start; a failure costs
    only that start's time, so it is logged, not fatal."""
    if cache.outcome == "used":
        log.debug("YANG model loaded from %s", cache.path)
        return
    try:
        cache.write(model.datamodel)
    except (OSError, pickle.PicklingError, RecursionError) as exc:
        log.warning("cannot keep the compiled YANG model in %s (%s): the next start compiles"
                    " it again", cache.path, exc)
        return
    log.info("YANG model compiled (cache %s) and kept in %s", cache.outcome, cache.path)


def first_start_message(password: str, path: Path, terminal: bool) -> str:
    """What the first start says about the admin password it created.

    The password itself only on a terminal: elsewhere stdout is a log kept for others to
    read (systemd's journal, readable by group adm), so only the file (mode 0600) is named.
    """
    where = f"{path}, mode 0600; change it with 'cmp-agent user passwd admin'"
    if terminal:
        return f"first start: created user 'admin' with password {password}\n(also in {where})"
    return (f"first start: created user 'admin'; its password is in {where}"
            " (not printed: stdout is not a terminal)")


def initial_admin_password(draw: Callable[[int], str] = secrets.token_urlsafe) -> str:
    """A new random admin password (120 bits, URL-safe base64) that does not begin with ``-``.

    An operator passes it on a command line (``netconf-console2 -p``, ``sshpass -p``), where a
    leading ``-`` is read as an option: such a draw (1 in 64) is drawn again.
    """
    while (password := draw(15)).startswith("-"):
        pass
    return password


def prepare_state_dir(state_dir: Path) -> str | None:
    """Create the state directory, host key and admin user on first start.

    Returns the new admin password, or ``None`` if the admin user existed.
    Raises :class:`agent.atomic.InsecurePermissions` (an ``OSError``) if other
    users could change anything in the state directory.
    """
    ensure_directory(state_dir, 0o700)
    check_private_tree(state_dir)
    host_key = state_dir / "ssh_host_ed25519_key"
    if not host_key.exists():
        key = asyncssh.generate_private_key("ssh-ed25519")
        atomic_write(host_key, key.export_private_key())
    users = UserStore(state_dir)
    if users.exists():
        return None
    password = initial_admin_password()
    atomic_write(state_dir / "initial-admin-password", (password + "\n").encode())
    users.write({"admin": UserEntry("admin", hash_password(password), (ADMIN_GROUP,))})
    return password


#: size at which agent.log is rotated, and how many rotated files are kept
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A log file rotated by size whose files are created mode 0600 (they name
    users and addresses), whatever the umask."""

    def _open(self):  # noqa: ANN202 - logging's signature
        fd = os.open(self.baseFilename, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def _setup_logging(state_dir: Path, level: str) -> None:
    """Log to stderr and ``<state-dir>/agent.log`` (0600, rotated at
    :data:`LOG_MAX_BYTES` into ``agent.log.1`` ... ``.5``), one line per event.

    The handlers write directly: a queue and writer thread cost more per RPC
    (a thread wake-up for each record) than the buffered writes they avoid.
    """
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(level)
    for handler in (logging.StreamHandler(sys.stderr),
                    PrivateRotatingFileHandler(state_dir / "agent.log", maxBytes=LOG_MAX_BYTES,
                                               backupCount=LOG_BACKUPS, encoding="utf-8")):
        handler.setFormatter(fmt)
        root.addHandler(handler)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)


def _quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio logs a traceback for every failed accept() (out of descriptors: one
    per connection attempt, 54 MB in 30 s); log those once a minute instead."""
    from .netconf.logins import RateLimitedLog

    accept_errors = RateLimitedLog(log)

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        message = context.get("message", "")
        if message.startswith("socket.accept() out of system resource"):
            accept_errors.warning("cannot accept connections: %s", context.get("exception"))
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


async def _serve(model: Model, args: argparse.Namespace, state_dir: Path,
                 pacing: "UpdatePacing") -> int:
    from .datastore import Datastores, SecretBox
    from .netconf.logins import LoginGuard, LoginLimits
    from .netconf.nacm import Nacm, bootstrap
    from .netconf.server import NetconfServer, start_ssh_server

    datastores = Datastores(model, state_dir, SecretBox.open(state_dir))
    from .pki.binding import attach
    from .pki.service import ServiceSettings

    users = UserStore(state_dir)
    nacm = Nacm(model, datastores, groups_of=users.groups, users_version=users.version,
                recovery_user=args.recovery_user or _process_user())
    server = NetconfServer(model, datastores, nacm=nacm,
                           confirm_backup=state_dir / "unconfirmed-commit-rollback.xml",
                           xpath_filter_seconds=args.xpath_filter_seconds)
    server.recover_unconfirmed_commit()
    bootstrap(datastores)  # after the recovery, which may bring back an older running
    pki = attach(server, model, datastores, state_dir, datastores.secrets,
                 settings=ServiceSettings(reply_wait=args.cmp_reply_wait), pacing=pacing)
    try:
        _quiet_accept_errors(asyncio.get_running_loop())
        guard = LoginGuard(LoginLimits(max_auth_tries=args.max_auth_tries,
                                       max_startups=args.max_startups,
                                       per_source_max_startups=args.per_source_max_startups,
                                       login_grace=args.login_grace_time,
                                       keyboard_interactive=args.keyboard_interactive))
        acceptor = await start_ssh_server(server, users, args.host, args.port,
                                          [str(state_dir / "ssh_host_ed25519_key")], guard)
    except OSError as exc:  # taken since check_address_free, or refused only on listen()
        print(cannot_listen_message(args.host, args.port, exc), file=sys.stderr)
        await pki.stop()
        return 1
    bound = acceptor.sockets[0].getsockname()
    shown_host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    log.info("listening on %s:%d (state directory %s)", shown_host, bound[1], state_dir)
    # what a client compares before trusting the agent (cmp-agent cli, ssh-keyscan)
    host_key = asyncssh.read_private_key(state_dir / "ssh_host_ed25519_key")
    # one write, so that no log line from the logging thread lands inside it
    sys.stdout.write(f"SSH host key: ED25519 {host_key.get_fingerprint()}\n"
                     f"listening on {shown_host}:{bound[1]}\n")
    sys.stdout.flush()
    pki.start()  # reads running's sessions in the background, after the agent listens
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await pki.stop()
    server.close()
    await server.rollback_ended()  # the sessions' end rolled back a confirmed commit
    await server.filters.close()
    acceptor.close()
    await acceptor.wait_closed()
    return 0
