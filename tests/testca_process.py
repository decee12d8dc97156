"""Start tools/testca as a real process on a free loopback port (shared by tests)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RunningCa:
    port: int
    directory: Path
    ref: str
    secret: str
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/pkix/"

    @property
    def certificate_pem(self) -> str:
        return (self.directory / "ca.pem").read_text()


@contextlib.contextmanager
def run_testca(directory: Path, *args: str, ref: str = "1234", secret: str = "cmp-secret",
               host: str = "127.0.0.1"):
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "testca"), "--port", "0", "--dir", str(directory),
         "--host", host, "--ref", ref, "--secret", secret, *args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = proc.stdout.readline()
        if not line.startswith("listening on"):
            raise RuntimeError(f"testca did not start: {line!r}")
        yield RunningCa(int(line.rsplit(":", 1)[1]), directory, ref, secret, host)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
