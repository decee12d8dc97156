"""Ansible at fleet scale: the playbooks of tools/ansible, run for real.

The venv's ``ansible-playbook`` drives three agents on their own loopback ports
over NETCONF/SSH (``ansible.netcommon.netconf``, generic platform) and enrols
them with one ``tools/testca``. The example inventory is used as it is; a
second inventory only adds the agents' real ports, and the lab directory it
reads the admin passwords from holds links to the agents' state directories.
Ansible runs with a home, temporary and socket directories of its own under the
test's temporary directory, its default output, and a time limit on every run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from testca_process import run_testca

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "tools" / "ansible"
BIN = Path(sys.executable).parent
#: seconds one ansible-playbook run may take (a run takes a few seconds)
RUN_TIMEOUT = 180
HOSTS = ("agent1", "agent2", "agent3")
pytestmark = pytest.mark.slow  # a minute a test: a few Ansible runs on three hosts
PKI_NS = "urn:cmp-agent:yang:cmp-agent-pki"


_TASK = re.compile(r"^TASK \[(.*)\] \**$", re.M)
_HOST_RESULT = re.compile(
    r"^(ok|changed|skipping|fatal|failed): \[([^\]]+)\](?:: FAILED!)?(?: => )?", re.M)
_ADHOC_RESULT = re.compile(r"^(\S+) \| (SUCCESS|CHANGED|FAILED!|UNREACHABLE!) => ", re.M)
_RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"
                    r"\s+skipped=(\d+)", re.M)


def _json_after(text: str, position: int) -> dict:
    """The JSON object Ansible printed at *position*, or {} if there is none."""
    if not text.startswith("{", position):
        return {}
    return json.JSONDecoder().raw_decode(text, position)[0]


@dataclass
class PlaybookRun:
    """One finished ``ansible-playbook`` or ``ansible`` run, read from Ansible's
    default output: task headers, one line (and JSON) per host, the PLAY RECAP.

    (The JSON callback of ansible.posix cannot be used: netconf_rpc returns
    bytes, which it refuses to serialise.)"""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str

    def stats(self, host: str) -> dict[str, int]:
        """The PLAY RECAP of *host*: ok, changed, unreachable, failed, skipped."""
        for match in _RECAP.finditer(self.stdout):
            if match.group(1) == host:
                return dict(zip(("ok", "changed", "unreachable", "failed", "skipped"),
                                map(int, match.groups()[1:])))
        raise KeyError(f"{host} is not in the PLAY RECAP:\n{self.explain()}")

    def results(self, task: str) -> dict[str, tuple[str, dict]]:
        """Every host's status (ok, changed, skipping, fatal) and printed result for
        the task named *task*."""
        parts = _TASK.split(self.stdout)
        for name, body in zip(parts[1::2], parts[2::2]):
            if name == task:
                return {match.group(2): (match.group(1), _json_after(body, match.end()))
                        for match in _HOST_RESULT.finditer(body)}
        raise KeyError(f"no task {task!r} in the output:\n{self.explain()}")

    def adhoc_results(self) -> dict[str, tuple[str, dict]]:
        """Every host's status and result of an ad-hoc ``ansible`` run."""
        return {match.group(1): (match.group(2), _json_after(self.stdout, match.end()))
                for match in _ADHOC_RESULT.finditer(self.stdout)}

    def explain(self) -> str:
        return f"$ {' '.join(self.command)}\nrc={self.returncode}\n{self.stdout}\n{self.stderr}"


@dataclass
class Controller:
    """An Ansible controller confined to one directory, talking to a lab fleet."""

    home: Path
    inventory: Path
    extra_vars: dict[str, str]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("ANSIBLE_") and k != "SSH_AUTH_SOCK"}
        sockets = Path(tempfile.mkdtemp(prefix="ans", dir="/tmp"))  # a short AF_UNIX path
        env.update({
            "HOME": str(self.home),
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
            "ANSIBLE_HOME": str(self.home / ".ansible"),
            "ANSIBLE_LOCAL_TEMP": str(self.home / "tmp"),
            "ANSIBLE_PERSISTENT_CONTROL_PATH_DIR": str(sockets),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
        })
        return env

    def _run(self, command: list[str]) -> PlaybookRun:
        """Run *command* in a process group of its own, killed whole after RUN_TIMEOUT."""
        env = self.env()
        proc = subprocess.Popen(command, cwd=PLAYBOOKS, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            pytest.fail(f"{' '.join(command)} took more than {RUN_TIMEOUT} s:\n{stdout}\n{stderr}")
        finally:
            shutil.rmtree(env["ANSIBLE_PERSISTENT_CONTROL_PATH_DIR"], ignore_errors=True)
        return PlaybookRun(command, proc.returncode, stdout, stderr)

    def _inventory_args(self, **extra_vars: str) -> list[str]:
        args = ["-i", str(PLAYBOOKS / "inventory.yml"), "-i", str(self.inventory)]
        for key, value in {**self.extra_vars, **extra_vars}.items():
            args += ["-e", f"{key}={value}"]
        return args

    def playbook(self, name: str, *options: str, expect_failure: bool = False,
                 **extra_vars: str) -> PlaybookRun:
        """Run playbook *name* (with ansible-playbook *options*); it must succeed, or
        fail if *expect_failure*."""
        run = self._run([str(BIN / "ansible-playbook"), *self._inventory_args(**extra_vars),
                         *options, name])
        assert (run.returncode != 0) == expect_failure, run.explain()
        return run

    def module(self, module: str, args: str) -> PlaybookRun:
        """An ad-hoc module call on every host (``ansible cmp_agents -m ...``)."""
        return self._run([str(BIN / "ansible"), "cmp_agents", *self._inventory_args(),
                          "-m", module, "-a", args])


@pytest.fixture
def ca(tmp_path: Path):
    with run_testca(tmp_path / "ca") as running:
        yield running


@pytest.fixture
def fleet(tmp_path: Path, start_agent, ca) -> Iterator[tuple[Controller, dict]]:
    """Three agents and an Ansible controller whose inventory points at them."""
    agents = {host: start_agent() for host in HOSTS}
    lab = tmp_path / "lab"
    lab.mkdir()
    for host, agent in agents.items():
        (lab / host).symlink_to(agent.state_dir)
    inventory = tmp_path / "fleet.yml"
    inventory.write_text(json.dumps({"all": {"children": {"cmp_agents": {"hosts": {
        host: {"ansible_port": agent.port} for host, agent in agents.items()}}}}}))
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True)
    yield Controller(home, inventory, {"cmp_lab_dir": str(lab), "cmp_server_url": ca.url}), agents


def local_certificate(agent) -> x509.Certificate:
    return x509.load_pem_x509_certificate(
        (agent.state_dir / "pki" / "public" / "s1-local.pem").read_bytes())


def request_result(run: PlaybookRun, request: str) -> dict[str, dict[str, str]]:
    """Every host's printed CMP reply (enroll.yml's "Show the result")."""
    return {host: result["msg"][f"{request} on session s1"]
            for host, (_, result) in run.results("Show the result").items()}


def test_a_fleet_is_configured_enrolled_and_renewed_idempotently(fleet, ca):
    controller, agents = fleet
    ca_cert = x509.load_pem_x509_certificate(ca.certificate_pem.encode())

    # configure: every host changes (entity and session, then the secret);
    # a rerun changes nothing (and shows no secret, even at the highest verbosity)
    first = controller.playbook("configure.yml")
    for host in HOSTS:
        assert first.stats(host)["changed"] == 2, first.explain()
    again = controller.playbook("configure.yml", "-vvvv")
    for host in HOSTS:
        assert again.stats(host) == {"ok": 2, "changed": 0, "unreachable": 0, "failed": 0,
                                     "skipped": 0}, again.explain()

    # enrol (ir): every host gets a certificate from the CA for its own entity
    enrolled = controller.playbook("enroll.yml")
    replies = request_result(enrolled, "ir")
    serials = {}
    for number, host in enumerate(HOSTS, start=1):
        assert enrolled.stats(host)["changed"] == 1, enrolled.explain()
        assert replies[host]["status"] == "success"
        assert replies[host]["certificate-file"] == "s1-local.pem"
        cert = local_certificate(agents[host])
        cert.verify_directly_issued_by(ca_cert)
        common_name = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        assert common_name == f"router{number}.example.net"
        assert replies[host]["serial"] == f"{cert.serial_number:X}"
        serials[host] = cert.serial_number

    # rerunning the enrolment changes nothing
    rerun = controller.playbook("enroll.yml")
    for host in HOSTS:
        assert rerun.stats(host)["changed"] == 0, rerun.explain()
        assert local_certificate(agents[host]).serial_number == serials[host]

    # renew: cr, then kur, each signed with the local certificate
    for request in ("cr", "kur"):
        renewed = controller.playbook("enroll.yml", cmp_request=request)
        replies = request_result(renewed, request)
        for host in HOSTS:
            assert replies[host]["status"] == "success", renewed.explain()
            assert replies[host]["request-type"] == request
            cert = local_certificate(agents[host])
            cert.verify_directly_issued_by(ca_cert)
            assert cert.serial_number != serials[host]
            assert replies[host]["serial"] == f"{cert.serial_number:X}"
            serials[host] = cert.serial_number

    # the configuration leaves what the renewal set (authentication-cert) alone
    rerun = controller.playbook("configure.yml")
    for host in HOSTS:
        assert rerun.stats(host)["changed"] == 0, rerun.explain()

    # statistics: one ir, cr and kur per host, all accepted
    shown = controller.playbook("statistics.yml").results("Show the statistics")
    for host in HOSTS:
        counters = shown[host][1]["msg"]["session s1"]
        assert counters["messages-sent"] == {"ir": 1, "cr": 1, "kur": 1, "cert-conf": 3,
                                             "poll-req": 0, "p10cr": 0, "rr": 0, "genm": 0,
                                             "error": 0}
        assert counters["outcomes"]["accepted"] == 3
        assert counters["failures"] == {"transport": 0, "timeout": 0, "protection": 0,
                                        "certificate-rejected": 0}
        assert counters["last-request"]["type"] == "kur"
        assert counters["last-request"]["result"] == "success"
        not_after = local_certificate(agents[host]).not_valid_after_utc
        assert counters["local-certificate-not-after"] == not_after.strftime("%Y-%m-%dT%H:%M:%SZ")

    # the MAC secret never shows in Ansible's output, nor in the agents' logs
    assert "'no_log: true' was specified" in again.stdout
    for run in (first, again, enrolled):
        assert ca.secret not in run.stdout + run.stderr
    for agent in agents.values():
        assert ca.secret not in agent.log_text()


def test_get_schema_and_agent_errors_through_ansible(fleet, tmp_path):
    controller, _ = fleet
    schema = controller.module(
        "ansible.netcommon.netconf_rpc",
        "rpc=get-schema xmlns=urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
        " content='<identifier>cmp-agent-pki</identifier><format>yang</format>' display=xml")
    results = schema.adhoc_results()
    assert schema.returncode == 0 and set(results) == set(HOSTS), schema.explain()
    for status, result in results.values():
        assert status == "SUCCESS"
        assert "module cmp-agent-pki {" in result["output"]
        assert f'namespace "{PKI_NS}";' in result["output"]

    # a value the YANG model refuses: the agent's message reaches the operator,
    # and nothing is committed
    refused = controller.playbook("configure.yml", expect_failure=True, pki_country="Germany")
    results = refused.results("Set file format, entity and CMP session on candidate, then commit")
    for host in HOSTS:
        status, result = results[host]
        assert status == "fatal", refused.explain()
        assert "'Germany' is not valid for country" in result["msg"]
    configured = controller.playbook("configure.yml", pki_save_startup="true")
    for host in HOSTS:
        assert configured.stats(host)["changed"] == 2, configured.explain()

    # what netconf_get needs from the hello: :xpath filters, :startup (locked,
    # saved by the run above)
    got = controller.module("ansible.netcommon.netconf_get",
                            "source=startup lock=always filter=/pki/cmp-session/entity display=xml")
    results = got.adhoc_results()
    assert set(results) == set(HOSTS), got.explain()
    for host, (status, result) in results.items():
        assert status == "SUCCESS", got.explain()
        assert f"<cmp-session><name>s1</name><entity>router{host[-1]}</entity>" in result["output"]

    # a new MAC secret is a change (of the secret task only), once
    for expected in (1, 0):
        rotated = controller.playbook("configure.yml", cmp_secret_value="a-new-secret")
        for host in HOSTS:
            assert rotated.stats(host)["changed"] == expected, rotated.explain()
            assert rotated.results("Set the MAC secret of the CMP session (seed step 11)")[host][0] \
                == ("changed" if expected else "ok")

    # a CA that refuses: the request task of every host fails with the CA's answer
    with run_testca(tmp_path / "refusing-ca", "--reject", "quota exceeded") as refusing:
        controller.playbook("configure.yml", cmp_server_url=refusing.url)
        rejected = controller.playbook("enroll.yml", expect_failure=True,
                                       cmp_server_url=refusing.url)
    sent = rejected.results("Send the ir request")
    for host in HOSTS:
        status, result = sent[host]
        assert status == "fatal", rejected.explain()
        assert "session s1: ir failed: rejected" in result["msg"]
        assert "PKIStatus=rejection; PKIFailureInfo=badRequest" in result["msg"]
        assert "quota exceeded" in result["msg"]
        assert rejected.stats(host)["failed"] == 1
    assert "Show the result" not in rejected.stdout

    # a request for a session that is not configured stops before the RPC
    missing = controller.playbook("enroll.yml", expect_failure=True, cmp_session="s9",
                                  cmp_request="kur")
    results = missing.results("Check that the CMP session is configured")
    for host in HOSTS:
        status, result = results[host]
        assert status == "fatal", missing.explain()
        assert "CMP session s9 is not configured on this agent" in result["msg"]
    assert "Sign the request" not in missing.stdout
