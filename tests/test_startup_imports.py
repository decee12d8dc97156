"""What starting costs (issue 11): the agent starts without the CMP engine, and a CMP
client reads responses without pyasn1. Each check runs in a new interpreter, since
this one has imported everything the other tests use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "data" / "vectors" / "cmp"
#: what the `cmp-agent` entry point does before it imports the agent (agent/cli.py main)
AS_COMMAND = "import agent.cli\nagent.cli.prepare_process()\n"


def loaded_after(code: str) -> set[str]:
    """The modules loaded after running *code* in a new interpreter."""
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_agent_starts_without_the_cmp_engine():
    loaded = loaded_after(AS_COMMAND + "import agent.serve, agent.pki.binding, agent.netconf.server")
    assert "agent.pki.service" in loaded  # what serve attaches
    engine = {"agent.cmp.client", "agent.cmp.transaction", "agent.cmp.transport",
              "agent.cmp.messages.requests", "agent.cmp.messages.general"}
    assert not engine & loaded
    assert not {m for m in loaded if m.startswith("pyasn1")}
    # yangson's elementpath names only (agent/lazyimports.py), not its XPath parsers
    assert "elementpath.regex" in loaded and "elementpath.xpath2" not in loaded


def test_a_client_reads_responses_without_pyasn1():
    code = f"""
import agent.cmp.cli
from pathlib import Path
from agent.cmp import messages as m
from agent.cmp.names import parse_dn
fields = m.HeaderFields(parse_dn("/CN=CA"), parse_dn("/CN=EE"), b"t" * 16, b"s" * 16)
read = [m.decode_message(p.read_bytes()) for p in Path({str(VECTORS)!r}).glob("*.der")]
assert any(msg.body_type == "ip" for msg in read)
[m.cert_rep_content(msg) for msg in read if msg.body_type == "ip"]
m.error_content(m.decode_message(m.encode_message(fields, m.error_body(m.ErrorContent(
    m.StatusInfo(2, ("no",), (1,)))), None)))
m.poll_responses(m.decode_message(m.encode_message(
    fields, m.poll_rep_body([m.PollResponse(0, 5)]), None)))
"""
    loaded = loaded_after(code)
    assert "agent.cmp.client" in loaded
    assert not {m for m in loaded if m.startswith("pyasn1")}


def test_elementpath_is_deferred_and_complete_when_asked():
    """yangson's two names come without running elementpath's packages
    (agent/lazyimports.py): RegexError from elementpath.regex.codepoints, translate_pattern
    a function that runs elementpath.regex at its first call and answers as elementpath's
    own does, errors included; any other use of elementpath gets the whole package, the
    same class either way."""
    code = AS_COMMAND + r"""
import agent.model, sys
partial = sorted(m for m in sys.modules if m.startswith("elementpath"))
from yangson import constraint
options = dict(back_references=False, lazy_quantifiers=False, anchors=False)
ours = constraint.translate_pattern(r"[a-z]+\p{Lu}\d{2}", **options)
try:
    constraint.translate_pattern("[a-", **options)
except constraint.RegexError:
    raised = True
import elementpath, elementpath.regex
real = elementpath.regex.translate_pattern(r"[a-z]+\p{Lu}\d{2}", **options)
same = (constraint.RegexError is elementpath.regex.RegexError is elementpath.RegexError
        and ours == real and raised)
from elementpath import XPath2Parser, select
import lxml.etree
print(json.dumps([partial, same, elementpath.__version__,
                  select(lxml.etree.fromstring("<a><b/></a>"), "count(//b)")]))
"""
    loaded = loaded_after("import json\n" + code)
    assert "elementpath.xpath2" in loaded  # asked for: the whole package
    done = subprocess.run([sys.executable, "-c", "import json\n" + code], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    partial, same, version, count = json.loads(done.stdout)
    assert partial == ["elementpath", "elementpath.regex", "elementpath.regex.codepoints"]
    assert same and version and count == 1


def test_asyncssh_finds_the_same_native_libraries_in_the_agent():
    """serve imports asyncssh with find_library answered from the loader's cache
    (agent/lazyimports.py): asyncssh decides on nettle and liboqs, and so on its
    algorithms, as a plain import does, and find_library is itself again after it."""
    code = """
import ctypes.util, json
real, gcc, linked = ctypes.util.find_library, ctypes.util._findLib_gcc, []
ctypes.util._findLib_gcc = lambda name: linked.append(name) or gcc(name)
{prelude}
import asyncssh
from asyncssh.crypto import pq, umac
print(json.dumps([pq._oqs_lib, umac._nettle_lib, pq.mlkem_available, pq.sntrup_available,
                  [a.decode() for a in asyncssh.kex.get_kex_algs()],
                  [a.decode() for a in asyncssh.mac.get_mac_algs()],
                  ctypes.util.find_library is real, linked]))
"""
    seen = []
    # the agent's imports, also as the command's process makes them (asyncssh asks the
    # OpenSSL backend, which that process defers, what it supports)
    for prelude in ("", "import agent.serve", AS_COMMAND + "import agent.serve"):
        done = subprocess.run([sys.executable, "-c", code.format(prelude=prelude)], cwd=ROOT,
                              capture_output=True, text=True, check=True)
        seen.append(json.loads(done.stdout.splitlines()[-1]))
    plain, agent, command = seen
    assert agent[:-1] == plain[:-1] == command[:-1]
    assert command[-1] == []
    assert plain[1] and "umac-64-etm@openssh.com" in plain[5]  # nettle is installed here
    assert agent[-2] is True
    assert agent[-1] == []  # no gcc run to look for a library (liboqs, if missing)


def test_the_cmp_command_loads_only_what_its_kind_needs():
    """`cmp-agent cmp ir` (issue 11, a whole process under 150 ms): the general-message
    machinery is loaded by genm alone, message times are read without strptime, and HTTP
    is spoken without http.client (and its email package); ssl waits for an https URL.
    What agent/lazyimports.py defers is not run: inspect (whose code runs, with ast, dis
    and tokenize, if a dataclass without a docstring is made: dataclasses then writes
    one from its signature), email.utils, the OpenSSH formats of cryptography."""
    loaded = loaded_after(AS_COMMAND.replace("prepare_process()", "prepare_process('cmp')")
                          + "import agent.cmp.cli")
    assert "agent.cmp.client" in loaded
    assert not {m for m in loaded if m.split(".")[0] in {"yangson", "elementpath", "asyncssh"}
                or m.startswith(("agent.netconf", "agent.yang", "urllib.request"))}
    assert not {"agent.cmp.genm", "agent.cmp.messages.general", "_strptime", "http.client",
                "email.parser", "ssl"} & loaded
    assert not {"ast", "dis", "tokenize", "email.charset", "bcrypt",
                "cryptography.hazmat.primitives.serialization.ssh"} & loaded


def test_the_cmp_command_hashes_without_the_system_openssl():
    """hashlib and hmac import ``_hashlib``, which loads the system's OpenSSL and tries
    every named constructor (7 % of `cmp-agent cmp ir`): for `cmp` both are deferred
    (agent/lazyimports.py) and the engine's MACs are computed without them; cryptography's
    `hmac.compare_digest` is hmac's own, and anything else asked of them runs them."""
    code = AS_COMMAND.replace("prepare_process()", "prepare_process('cmp')") + """
import agent.cmp.cli, agent.cmp.client, agent.cmp.transaction, agent.cmp.verify
from agent.cmp import protection
from cryptography.hazmat.primitives import constant_time
for name in protection.MAC_SCHEMES:
    params = protection.new_mac_parameters(name, b"s" * 16, 500)
    value = protection.mac_value(b"secret", params, b"data")
    protection.verify_mac(b"secret", params, b"data", value, weak_allowed=True)
assert constant_time.bytes_eq(b"a", b"a") and not constant_time.bytes_eq(b"a", b"b")
"""
    loaded = loaded_after(code)
    assert "agent.cmp.transaction" in loaded
    assert "_hashlib" not in loaded
    loaded = loaded_after(code + "import hashlib, hmac\n"
                          "assert hashlib.sha256(b'').digest() == hashlib.new('sha256').digest()\n"
                          "assert hmac.new(b'k', b'd', 'sha256').digest()\n")
    assert "_hashlib" in loaded


def test_asyncssh_takes_self_from_typing_without_running_typing_extensions():
    """asyncssh imports Self alone from typing_extensions, which on Python 3.11 is
    typing.Self: the serve process defers typing_extensions (agent/cli.py) and its code
    does not run (nor replace typing's parameter collection) until another name is asked."""
    code = AS_COMMAND.replace("prepare_process()", "prepare_process('serve')") + """
import typing, sys
import agent.serve, agent.netconf.server, asyncssh.connection, asyncssh.listener
te = sys.modules["typing_extensions"]
assert asyncssh.connection.Self is typing.Self and asyncssh.listener.Self is typing.Self
assert "__getattr__" in te.__dict__ and "TypedDict" not in te.__dict__, "run"
collect = typing._collect_parameters
from typing_extensions import TypedDict, Literal
assert te.TypedDict is TypedDict and "__getattr__" not in te.__dict__
assert typing._collect_parameters is not collect  # its code ran, as a plain import runs it
"""
    assert "typing_extensions" in loaded_after(code)


def test_serve_does_not_run_ssl_and_asyncio_gets_the_same_classes():
    """asyncio imports ssl (the agent speaks no TLS) and takes SSLWantReadError and
    SSLSyscallError from it at its import: for serve ssl is deferred (agent/cli.py) and
    those come from the C module _ssl, the classes ssl itself exports; any other name
    runs ssl, complete."""
    code = AS_COMMAND.replace("prepare_process()", "prepare_process('serve')") + """
import asyncio, asyncio.sslproto, sys, _ssl
import agent.serve, agent.netconf.server
ssl = sys.modules["ssl"]
assert "__getattr__" in ssl.__dict__ and "SSLContext" not in ssl.__dict__, "run"
assert asyncio.sslproto.SSLAgainErrors == (_ssl.SSLWantReadError, _ssl.SSLSyscallError)
context = ssl.create_default_context()
assert isinstance(context, ssl.SSLContext) and "__getattr__" not in ssl.__dict__
assert ssl.SSLWantReadError is _ssl.SSLWantReadError and ssl.SSLSyscallError is _ssl.SSLSyscallError
"""
    assert "ssl" in loaded_after(code)
