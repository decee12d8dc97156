"""Scale benchmark: many auto-update sessions against tools/testca, and a renewal storm.

    .venv/bin/python tools/bench/bench_scale.py [--sessions 10000] [--storm 1000]
        [--concurrency 8] [--jitter 30] [--idle-seconds 60] [--json-out FILE]

One run (issue 11, goal 4):

1. Starts tools/testca (behind a TCP relay that counts the connections open at
   once: the CA concurrency the agent causes) and the agent
   (``--auto-update-concurrency``, ``--auto-update-jitter`` as given).
2. Puts *sessions* certificates, issued by the test CA and due for renewal in
   months, and one key pair in the agent's stores, then creates that many
   cmp-sessions with auto-update over NETCONF in one ``<edit-config>`` and
   ``<commit>`` (``edit_ms``, ``commit_ms``); ``settle_s`` is how long the
   agent then works in the background (its view of running and the renewal
   schedule, a chunk of sessions at a time) until it is quiet; ``rss_kb`` is
   its resident memory then.
3. ``idle_cpu_percent``: the agent's CPU over the next *idle-seconds* with
   nothing due (goal: about 0).
4. The storm: *storm* sessions get, in one commit, certificates that fall due
   together a few seconds later. Until every one is renewed (a KUR signed
   with the old certificate, the new one verified against the CA certificate
   and saved, the old one kept as ``.previous``), a second NETCONF session
   does small ``<get-config>`` round trips. Figures: ``storm_renewed`` (all,
   none lost), ``storm_seconds`` and ``renewals_per_s``,
   ``ca_max_concurrent`` (never above ``--concurrency``), and
   ``netconf_p99_ms_during_storm`` (goal under 20 ms).

Prints one JSON document. Timings depend on the machine; no figure is
asserted here (tests/test_bench_scale_smoke.py runs it small).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench_netconf import (CLK_TCK, COMMIT, GET_CONFIG_SMALL, NC_NS, PKI_NS, AgentServer, Target,
                           cpu_ticks, die_with_parent, print_json, process_tree, rpc_ok)

ROOT = Path(__file__).resolve().parents[2]
CA_NAME = "/C=CN/O=cmp-agent/CN=cmp-agent test CA"
P99_GOAL_MS = 20.0


class ConnectionCounter:
    """A TCP relay in front of the CA that records how many connections are open at once."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.open = 0
        self.max_open = 0
        self.total = 0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def reset(self) -> None:
        self.max_open = self.open
        self.total = 0

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.total += 1
        self.max_open = max(self.max_open, self.open)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                try:
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                finally:
                    dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer),
                                 return_exceptions=True)
        finally:
            self.open -= 1

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


def start_testca(directory: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "testca"), "--port", "0", "--dir", str(directory),
         "--validity", str(400 * 86400)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=die_with_parent)
    line = proc.stdout.readline()
    if not line.startswith("listening on"):
        proc.kill()
        raise RuntimeError(f"testca did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1])


class Issuer:
    """Issues certificates with the test CA's own key (what the CA would issue by IR)."""

    def __init__(self, ca_dir: Path):
        self.key = serialization.load_pem_private_key((ca_dir / "ca-key.pem").read_bytes(), None)
        self.cert = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
        self.device_key = ec.generate_private_key(ec.SECP256R1())

    def issue(self, name: str, not_before: datetime.datetime,
              not_after: datetime.datetime) -> bytes:
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(self.device_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)


def sessions_edit(names: list[str], url: str, cert_of: dict[str, str], create: bool) -> str:
    op = ' nc:operation="create"' if create else ""
    body = "".join(
        f"<cmp-session{op}><name>{n}</name>"
        + (f"<ca-name>{CA_NAME}</ca-name><server-url><url>{url}</url></server-url>"
           "<local-key-pair><name>device</name></local-key-pair>"
           "<verification-cert>ca.pem</verification-cert>"
           "<auto-update><enabled>true</enabled><expire-time>50</expire-time></auto-update>"
           if create else "")
        + f"<authentication-cert>{cert_of[n]}</authentication-cert></cmp-session>"
        for n in names)
    return (f'<edit-config><target><candidate/></target><config>'
            f'<pki xmlns="{PKI_NS}" xmlns:nc="{NC_NS}">{body}</pki></config></edit-config>')


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def settle(pid: int, timeout: float) -> float:
    """Seconds until the agent is quiet (under 2 % of a CPU for 2 s): after a commit
    it brings its view of running and the renewal schedule up to date in the
    background, a chunk of sessions at a time."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = sum(cpu_ticks(process_tree([pid])).values())
        await asyncio.sleep(2)
        if sum(cpu_ticks(process_tree([pid])).values()) - before < 0.04 * CLK_TCK:
            break
    return round(time.monotonic() - started, 1)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def run(args: argparse.Namespace) -> dict:
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        ca_dir = Path(tmp) / "ca"
        ca_proc, ca_port = start_testca(ca_dir)
        relay = ConnectionCounter(ca_port)
        await relay.start()
        agent = AgentServer(extra_args=("--auto-update-concurrency", str(args.concurrency),
                                        "--auto-update-jitter", str(args.jitter)))
        try:
            issuer = Issuer(ca_dir)
            public = agent.state_dir / "pki" / "public"
            private = agent.state_dir / "pki" / "private"
            public.mkdir(parents=True)
            private.mkdir(parents=True, mode=0o700)
            (public / "ca.pem").write_bytes(issuer.cert.public_bytes(serialization.Encoding.PEM))
            (private / "device.pem").write_bytes(issuer.device_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
            (private / "device.pem").chmod(0o600)
            now = datetime.datetime.now(datetime.timezone.utc)
            names = [f"s{i:05d}" for i in range(args.sessions)]
            cert_of = {n: f"{n}.pem" for n in names}
            started = time.perf_counter()
            for n in names:  # due in about 200 days
                (public / cert_of[n]).write_bytes(issuer.issue(
                    n, now - datetime.timedelta(days=1), now + datetime.timedelta(days=400)))
            figures["setup_certificates_s"] = round(time.perf_counter() - started, 1)
            url = f"http://127.0.0.1:{relay.port}/pkix/"

            agent.start()
            pid = agent.root_pids()[0]
            target = Target(agent, args.rpc_timeout)
            session = await target.session()
            figures["edit_ms"] = round(
                await rpc_ok(session, sessions_edit(names, url, cert_of, True)) * 1000, 1)
            figures["commit_ms"] = round(await rpc_ok(session, COMMIT) * 1000, 1)
            figures["settle_s"] = await settle(pid, args.settle_timeout)
            figures["rss_kb"] = rss_kb(pid)

            before = sum(cpu_ticks(process_tree([pid])).values())
            await asyncio.sleep(args.idle_seconds)
            ticks = sum(cpu_ticks(process_tree([pid])).values()) - before
            figures["idle_seconds"] = args.idle_seconds
            figures["idle_cpu_percent"] = round(ticks / CLK_TCK / args.idle_seconds * 100, 3)

            # the storm: certificates that fall due together, a few seconds from now
            storm = names[:args.storm]
            lead = datetime.timedelta(seconds=3)
            life = datetime.timedelta(seconds=max(20 * args.jitter, 3600))
            now = datetime.datetime.now(datetime.timezone.utc)
            for n in storm:
                cert_of[n] = f"{n}-storm.pem"
                (public / cert_of[n]).write_bytes(issuer.issue(n, now + lead - life,
                                                               now + lead + life))
            relay.reset()
            await rpc_ok(session, sessions_edit(storm, url, cert_of, False))
            await rpc_ok(session, COMMIT)
            storm_started = time.perf_counter()
            reader = await target.session()
            reads: list[float] = []
            renewed = 0
            deadline = time.monotonic() + args.storm_timeout
            last_check = 0.0
            while renewed < len(storm) and time.monotonic() < deadline:
                reads.append(await rpc_ok(reader, GET_CONFIG_SMALL))
                if time.monotonic() - last_check > 0.5:
                    last_check = time.monotonic()
                    renewed = sum((public / f"{cert_of[n]}.previous").exists() for n in storm)
            storm_seconds = time.perf_counter() - storm_started
            figures.update(
                storm_sessions=len(storm),
                storm_renewed=renewed,
                storm_seconds=round(storm_seconds, 1),
                renewals_per_s=round(renewed / storm_seconds, 2),
                concurrency_limit=args.concurrency,
                jitter_s=args.jitter,
                ca_max_concurrent=relay.max_open,
                ca_connections=relay.total,
                netconf_rpcs_during_storm=len(reads),
                netconf_median_ms_during_storm=round(statistics.median(reads) * 1000, 3),
                netconf_p99_ms_during_storm=round(p99(reads) * 1000, 3),
            )
            await reader.close()
            await session.close()
        finally:
            agent.stop()
            relay.close()
            ca_proc.terminate()
            ca_proc.wait(10)
    figures["goals"] = {
        "idle_cpu_about_0": figures.get("idle_cpu_percent", 100) < 1.0,
        "all_renewed": figures.get("storm_renewed") == figures.get("storm_sessions"),
        "ca_concurrency_bounded": figures.get("ca_max_concurrent", 0) <= args.concurrency,
        "netconf_p99_under_20_ms": figures.get("netconf_p99_ms_during_storm", 1e9) < P99_GOAL_MS,
    }
    figures["meta"] = {"cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg(),
                       "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10000)
    parser.add_argument("--storm", type=int, default=1000,
                        help="sessions whose certificates fall due together (default 1000)")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="the agent's --auto-update-concurrency (default 8)")
    parser.add_argument("--jitter", type=float, default=30.0,
                        help="the agent's --auto-update-jitter in seconds (default 30)")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--settle-timeout", type=float, default=300.0,
                        help="longest wait for the agent to be quiet after the commit")
    parser.add_argument("--storm-timeout", type=float, default=1800.0)
    parser.add_argument("--rpc-timeout", type=float, default=600.0)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    if not 0 < args.storm <= args.sessions:
        parser.error("--storm must be 1 to --sessions")
    print_json(asyncio.run(run(args)), args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
