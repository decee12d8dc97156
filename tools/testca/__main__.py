"""Run the test CA: ``.venv/bin/python tools/testca [--port 0] [--dir DIR] ...``.

It listens on 127.0.0.1 only (``--host ::1`` for IPv6 loopback), serves CMP over HTTP (RFC 6712) on any path
(use ``http://127.0.0.1:PORT/pkix/``), writes its certificate to DIR/ca.pem and
prints ``listening on HOST:PORT`` once ready.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ca import CaSettings, TestCa  # noqa: E402

from cryptography import x509  # noqa: E402

CONTENT_TYPE = "application/pkixcmp"
MAX_MESSAGE = 1 << 20


def make_handler(ca: TestCa) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """RFC 6712 3.3/3.4: POST application/pkixcmp, answer 200 with the same type."""

        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length") or 0)
            if self.headers.get_content_type() != CONTENT_TYPE or not 0 < length <= MAX_MESSAGE:
                self.send_error(415 if length else 400, f"expected {CONTENT_TYPE}")
                return
            answer = ca.handle(self.rfile.read(length))
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(answer)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, fmt: str, *args) -> None:
            sys.stderr.write("testca: " + fmt % args + "\n")

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testca", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8829, help="TCP port (0: any free one)")
    parser.add_argument("--host", default="127.0.0.1", choices=("127.0.0.1", "::1"),
                        help="loopback address to listen on (IPv4 or IPv6)")
    parser.add_argument("--dir", type=Path, default=Path("testca-state"),
                        help="where the CA keeps its key and ca.pem")
    parser.add_argument("--ref", default="1234", help="MAC reference value (senderKID)")
    parser.add_argument("--secret", default="cmp-secret", help="MAC secret")
    parser.add_argument("--validity", type=float, default=365 * 86400,
                        help="validity of issued certificates, in seconds")
    parser.add_argument("--not-after-cap", type=datetime.datetime.fromisoformat, metavar="TIME",
                        help="issue no certificate valid after TIME (ISO 8601 with a zone), like"
                             " a CA that caps validity at its own notAfter")
    parser.add_argument("--trust", type=Path, action="append", default=[],
                        help="PEM certificate of a CA whose certificates may sign IR/CR")
    parser.add_argument("--poll", type=int, default=0, help="answer 'waiting' and poll N times"
                        " (certificate requests and genm)")
    parser.add_argument("--check-after", type=int, default=1, metavar="SECONDS",
                        help="the checkAfter of each pollRep (default 1)")
    parser.add_argument("--poll-reason", default="issuing", metavar="TEXT",
                        help="the statusString of 'waiting' and each pollRep's reason"
                             " (default 'issuing'; '': none)")
    parser.add_argument("--reject", metavar="TEXT", help="reject every request with TEXT")
    parser.add_argument("--roll-root", action="store_true",
                        help="replace the CA's root key at start (RFC 4210 4.4): genm rootCaCert"
                             " then answers with the new root and its link certificates")
    args = parser.parse_args(argv)
    settings = CaSettings(
        reference=args.ref.encode(),
        secret=args.secret.encode(),
        validity=datetime.timedelta(seconds=args.validity),
        not_after_cap=args.not_after_cap,
        trusted=tuple(x509.load_pem_x509_certificate(p.read_bytes()) for p in args.trust),
        poll_count=args.poll,
        check_after=args.check_after,
        poll_reason=args.poll_reason,
        reject=args.reject,
    )
    ca = TestCa(args.dir, settings)
    if args.roll_root:
        ca.roll_root()
    server_class = ThreadingHTTPServer
    if ipaddress.ip_address(args.host).version == 6:
        server_class = type("Http6Server", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    server = server_class((args.host, args.port), make_handler(ca))
    print(f"listening on {args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
