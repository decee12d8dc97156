"""PkiService on its own: the bookkeeping around the engine."""

import asyncio

import pytest
from lxml import etree

from agent.datastore import Datastores, SecretBox
from agent.datastore.steps import YIELDS
from agent.model import Model
from agent.pki.service import PkiService

CONFIG = """<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">
<pki xmlns="urn:cmp-agent:yang:cmp-agent-pki">
  <entity><name>e1</name><common-name>router1</common-name></entity>
  <cmp-session><name>s1</name><entity>e1</entity>
    <server-url><url>http://127.0.0.1:9/pkix/</url></server-url>
    <local-key-pair><name>k1</name></local-key-pair>
    <message-authentication-code><reference-value>1</reference-value>
      <secret-value>s</secret-value></message-authentication-code>
  </cmp-session></pki></config>"""


@pytest.fixture(scope="module")
def model():
    return Model.load()


def test_an_engine_bug_does_not_leave_the_session_busy(model, tmp_path):
    datastores = Datastores(model, tmp_path, SecretBox.open(tmp_path))
    datastores.edit_config("candidate", etree.fromstring(CONFIG))
    datastores.commit()
    calls = []

    def broken_engine(request, **_):
        calls.append(request.kind)
        raise RuntimeError("engine bug")

    service = PkiService(datastores, tmp_path, datastores.secrets, enroll_fn=broken_engine)

    async def twice():
        return [await service.request("s1", "ir") for _ in range(2)]

    outcomes = asyncio.run(twice())
    assert calls == ["ir", "ir"]
    assert {(o.status, o.status_text) for o in outcomes} == {
        ("failure", "internal error: RuntimeError: engine bug")}
    last = service.stats_for("s1").last_request
    assert (last.result, last.reason) == ("failure", "internal error: RuntimeError: engine bug")


def _issuer():
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit CA")])

    def issue(public_key, serial):
        now = datetime.datetime.now(datetime.timezone.utc)
        return (x509.CertificateBuilder().subject_name(
                    x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "router1")]))
                .issuer_name(name).public_key(public_key).serial_number(serial)
                .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                .sign(key, hashes.SHA256()))

    return issue


def test_an_interrupted_key_update_never_loses_the_working_pair(model, tmp_path, monkeypatch, caplog):
    """A KUR with regenerate whose certificate write fails (a full disk, a crash)
    leaves a key that matches the certificate in place, twice in a row."""
    from cryptography.hazmat.primitives import serialization

    from agent.cmp.transaction import Enrolled, MessageCounts
    from agent.pki.stores import generate_key

    issue = _issuer()
    serials = iter(range(100, 200))

    def engine(request, **_):  # the CA's part: a certificate for the key asked for
        cert = issue(request.new_key.public_key(), next(serials))
        return Enrolled("accepted", cert, (), (), (), MessageCounts({"kur": 1}, {"kup": 1}))

    datastores = Datastores(model, tmp_path, SecretBox.open(tmp_path))
    service = PkiService(datastores, tmp_path, datastores.secrets, enroll_fn=engine)
    first_key = generate_key("rsa", 2048)
    service.keys.save("k1", first_key)
    service.certs.save("local.pem", issue(first_key.public_key(), 1), "pem")
    datastores.edit_config("candidate", etree.fromstring(CONFIG.replace(
        "</message-authentication-code>",
        "</message-authentication-code><authentication-cert>local.pem</authentication-cert>")
        .replace("<name>k1</name>", "<name>k1</name><regenerate>true</regenerate>")))
    datastores.commit()

    def spki(key_or_cert):
        return key_or_cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def working_pair_exists() -> bool:
        cert = service.certs.load("local.pem")
        return any(spki(service.keys.load(n)) == spki(cert) for n in service.keys.names())

    real_save = service.certs.save

    def failing_save(name, cert, file_format):
        if name == "local.pem":
            raise OSError(28, "No space left on device")
        real_save(name, cert, file_format)

    monkeypatch.setattr(service.certs, "save", failing_save)
    for _ in range(2):
        outcome = asyncio.run(service.request("s1", "kur"))
        assert outcome.status == "failure" and "No space left" in outcome.status_text
        assert working_pair_exists()
    monkeypatch.setattr(service.certs, "save", real_save)
    outcome = asyncio.run(service.request("s1", "kur"))
    assert outcome.status == "success", outcome.status_text
    assert spki(service.certs.load("local.pem")) == spki(service.keys.load("k1"))
    assert spki(service.keys.load("k1.previous")) == spki(first_key)
    # the engine checked no chain (Enrolled.chain_checked is False): the log says so
    assert "s1: the new certificate's chain was not checked: no trust anchor" in caplog.text


def _commit_pki(datastores: Datastores, body: str) -> None:
    """Edit *body* into candidate's /pki (merge; nc: is declared) and commit."""
    datastores.edit_config("candidate", etree.fromstring(
        '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" xmlns:nc='
        '"urn:ietf:params:xml:ns:netconf:base:1.0"><pki xmlns='
        f'"urn:cmp-agent:yang:cmp-agent-pki">{body}</pki></config>'))
    datastores.commit()


def test_the_view_of_running_follows_commits_a_chunk_at_a_time(model, tmp_path, monkeypatch):
    """After each commit the view equals one built from scratch; it is brought
    up to date in chunks in the background, or at once when asked first."""
    from agent.pki import service as service_module
    from agent.pki.config import PkiConfig

    monkeypatch.setattr(service_module, "VIEW_CHUNK", 3)
    monkeypatch.setattr(service_module, "VIEW_SLICE_SECONDS", 0)  # a step per slice
    datastores = Datastores(model, tmp_path, SecretBox.open(tmp_path))
    service = PkiService(datastores, tmp_path, datastores.secrets)
    told = []
    service.on_change.append(lambda pki, names: told.append(names))
    service.config()

    def commit(body: str) -> None:
        _commit_pki(datastores, body)

    def entry(i: int, extra: str = "") -> str:
        return f"<cmp-session><name>s{i}</name><entity>e1</entity>{extra}</cmp-session>"

    def from_scratch() -> PkiConfig:
        return PkiConfig.from_raw(datastores.running_raw())

    async def scenario():
        commit("<entity><name>e1</name><common-name>r1</common-name></entity>"
               + "".join(entry(i) for i in range(10)))
        assert service.config() == from_scratch()  # the entity changed: every session read
        assert set().union(*told) == {f"s{i}" for i in range(10)}
        told.clear()
        commit(entry(4, "<auto-update><enabled>true</enabled></auto-update>")
               + '<cmp-session nc:operation="delete"><name>s7</name></cmp-session>'
               + "".join(entry(i) for i in range(10, 15)))
        await asyncio.sleep(0)
        assert told and len(told[0]) == 3  # the first chunk; the rest comes later
        for _ in range(10):
            await asyncio.sleep(0)
        assert service.config() == from_scratch()
        assert set().union(*told) == {"s4", "s7", "s10", "s11", "s12", "s13", "s14"}
        commit("".join(entry(i, "<ca-name>/CN=X</ca-name>") for i in range(8)))
        assert service.config() == from_scratch()  # asked at once: no waiting for chunks
        assert service.config().sessions["s4"].auto_update is True

    asyncio.run(scenario())


def test_a_configuration_given_out_stays_as_it_was_while_the_view_catches_up(model, tmp_path,
                                                                            monkeypatch):
    """The view catching up with a commit changes its own dict of sessions in place,
    step by step, never one that config() gave out: what a caller holds (a request,
    the state) stays the configuration it was; its index by authentication-cert too."""
    from agent.pki import service as service_module
    from agent.pki.config import PkiConfig

    monkeypatch.setattr(service_module, "VIEW_CHUNK", 2)
    monkeypatch.setattr(service_module, "VIEW_SLICE_SECONDS", 0)  # a step per slice
    datastores = Datastores(model, tmp_path, SecretBox.open(tmp_path))
    service = PkiService(datastores, tmp_path, datastores.secrets)
    seen = []
    service.on_change.append(lambda pki, names: seen.append(
        {name: pki.sessions.get(name) for name in names}))

    def commit(body: str) -> None:
        _commit_pki(datastores, body)

    def entry(i: int, cert: str) -> str:
        return (f"<cmp-session><name>s{i}</name><entity>e1</entity>"
                f"<authentication-cert>{cert}</authentication-cert></cmp-session>")

    async def scenario():
        commit("<entity><name>e1</name></entity>" + "".join(entry(i, "a.pem") for i in range(6)))
        held = service.config()
        assert sorted(held.sessions_authenticating_with("a.pem")) == [f"s{i}" for i in range(6)]
        before = dict(held.sessions)
        commit("".join(entry(i, "b.pem") for i in range(4))
               + '<cmp-session nc:operation="delete"><name>s5</name></cmp-session>')
        for _ in range(3 * (YIELDS + 1)):  # the steps, each changing the view in place
            await asyncio.sleep(0)
        assert service._refresher.done()
        assert held.sessions == before  # given out before the commit: as it was
        assert sorted(held.sessions_authenticating_with("a.pem")) == [f"s{i}" for i in range(6)]
        now = service.config()
        assert now is not held and now == PkiConfig.from_raw(datastores.running_raw())
        assert sorted(now.sessions_authenticating_with("b.pem")) == ["s0", "s1", "s2", "s3"]
        assert now.sessions_authenticating_with("a.pem") == ("s4",)
        # each listener call saw the sessions it was told of as committed
        told = {name: session for step in seen for name, session in step.items()}
        assert told["s5"] is None and told["s0"].authentication_cert == "b.pem"
        # given out: the next commit's steps copy it before changing anything
        commit(entry(4, "b.pem"))
        for _ in range(3 * (YIELDS + 1)):
            await asyncio.sleep(0)
        assert now.sessions["s4"].authentication_cert == "a.pem"
        assert sorted(service.config().sessions_authenticating_with("b.pem")) == [
            "s0", "s1", "s2", "s3", "s4"]

    asyncio.run(scenario())


@pytest.mark.parametrize("slice_seconds, first", [(0, []), (60, [2, 2, 1])])
def test_the_view_is_read_in_slices_of_time_not_of_sessions(model, tmp_path, monkeypatch,
                                                           slice_seconds, first):
    """After a commit the view is read a step of VIEW_CHUNK sessions at a time;
    the loop is given back when the slice's time is up, however many steps that
    took: one step in a slice of no time, every step in one of a minute. The
    commit created /pki, so what is not a session is read again first, in a
    step of its own (in a slice of no time, no session is told of in the first)."""
    from agent.pki import service as service_module

    monkeypatch.setattr(service_module, "VIEW_CHUNK", 2)
    monkeypatch.setattr(service_module, "VIEW_SLICE_SECONDS", slice_seconds)
    datastores = Datastores(model, tmp_path, SecretBox.open(tmp_path))
    service = PkiService(datastores, tmp_path, datastores.secrets)
    service.config()
    told = []
    service.on_change.append(lambda pki, names: told.append(len(names)))

    async def scenario():
        datastores.edit_config("candidate", etree.fromstring(
            '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><pki xmlns='
            '"urn:cmp-agent:yang:cmp-agent-pki"><entity><name>e1</name><common-name>r1'
            "</common-name></entity>" + "".join(f"<cmp-session><name>s{i}</name><entity>e1"
                                                "</entity></cmp-session>" for i in range(5))
            + "</pki></config>"))
        datastores.commit()
        await asyncio.sleep(0)
        assert told == first  # the steps of the first slice
        if slice_seconds == 0:
            for _ in range(YIELDS):
                await asyncio.sleep(0)
            assert told == [2]  # the second slice: one step of sessions
        while service._refresher is not None and not service._refresher.done():
            await asyncio.sleep(0)
        assert sum(told) == 5

    asyncio.run(scenario())


def test_at_start_the_updater_plans_every_session_as_the_view_is_read(model, tmp_path,
                                                                     monkeypatch):
    """A started agent reads running into the view after it listens, a chunk at a time
    (not before its first <hello>); every session with a certificate is planned as its
    chunk arrives, and asking for the configuration finishes the work at once."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from agent.pki import service as service_module
    from agent.pki.autoupdate import AutoUpdater

    monkeypatch.setattr(service_module, "VIEW_CHUNK", 2)
    monkeypatch.setattr(service_module, "VIEW_SLICE_SECONDS", 0)  # a step per slice
    issue = _issuer()
    public = tmp_path / "pki" / "public"
    public.mkdir(parents=True)
    sessions = []
    for i in range(5):
        cert = issue(ec.generate_private_key(ec.SECP256R1()).public_key(), i + 1)
        (public / f"c{i}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        sessions.append(f"<cmp-session><name>s{i}</name><entity>e1</entity>"
                        f"<authentication-cert>c{i}.pem</authentication-cert>"
                        "<auto-update><enabled>true</enabled></auto-update></cmp-session>")
    datastores = Datastores(model, tmp_path, SecretBox.open(tmp_path))
    datastores.edit_config("candidate", etree.fromstring(
        '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><pki xmlns='
        '"urn:cmp-agent:yang:cmp-agent-pki"><entity><name>e1</name><common-name>r1'
        "</common-name></entity>" + "".join(sessions) + "</pki></config>"))
    datastores.commit()

    def planned(service) -> set[str]:
        return {name for name, stats in service.statistics.items()
                if stats.next_auto_update is not None}

    async def scenario(ask_at_once: bool):
        service = PkiService(datastores, tmp_path, datastores.secrets)
        updater = AutoUpdater(service)
        updater.start()
        assert not service.has_view and planned(service) == set()  # nothing read yet
        if ask_at_once:
            assert set(service.config().sessions) == {f"s{i}" for i in range(5)}
            assert planned(service) == {f"s{i}" for i in range(5)}
        else:
            await asyncio.sleep(0)
            assert planned(service) == set()  # the first step reads what is not a session
            for _ in range(YIELDS):
                await asyncio.sleep(0)
            assert len(planned(service)) == 2  # the first chunk
            for _ in range(5 * YIELDS):  # each chunk gives the loop YIELDS iterations
                await asyncio.sleep(0)
            assert planned(service) == {f"s{i}" for i in range(5)}
        await updater.stop()

    asyncio.run(scenario(False))
    asyncio.run(scenario(True))


def test_clear_statistics_during_a_transaction(model, tmp_path):
    """Issue 9: clear-statistics while the CA is asked; the enrolment still
    succeeds, is reported (result listeners: notification, auto-update) and is
    the last request afterwards."""
    import threading

    from agent.cmp.transaction import Enrolled, MessageCounts
    from agent.pki.stores import generate_key

    issue = _issuer()
    asked, answer = threading.Event(), threading.Event()

    def engine(request, **_):
        asked.set()
        answer.wait(30)
        key = request.new_key or generate_key("rsa", 2048)
        return Enrolled("accepted", issue(key.public_key(), 7), (), (), (),
                        MessageCounts({"ir": 1}, {"ip": 1}))

    datastores = Datastores(model, tmp_path, SecretBox.open(tmp_path))
    datastores.edit_config("candidate", etree.fromstring(CONFIG))
    datastores.commit()
    service = PkiService(datastores, tmp_path, datastores.secrets, enroll_fn=engine)
    results = []
    service.on_result.append(results.append)

    async def scenario():
        request = asyncio.ensure_future(service.request("s1", "ir"))
        await asyncio.get_running_loop().run_in_executor(None, asked.wait, 30)
        service.clear_statistics(None)
        assert service.stats_for("s1").last_request is None
        answer.set()
        return await request

    outcome = asyncio.run(scenario())
    assert outcome.status == "success", outcome.status_text
    assert [r.status for r in results] == ["success"]
    last = service.stats_for("s1").last_request
    assert (last.type, last.result) == ("ir", "success")


def test_every_failure_kind_has_an_error_app_tag():
    from agent.cmp.transaction import FailureKind
    from agent.pki.service import _APP_TAGS

    assert set(_APP_TAGS) == set(FailureKind)
    assert all(tag.startswith("cmp-") for tag in _APP_TAGS.values())


def test_a_forged_answers_control_characters_reach_statistics_escaped():
    """A forged, signed answer whose sender name holds control characters fails the
    transaction with that name in its reason (RFC 4210 5.1.1: no certificate of that
    sender); statistics/last-request shows it escaped (XML 1.0 cannot carry it)."""
    import datetime
    import itertools

    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from agent.cmp import messages as m
    from agent.cmp.client import EnrollmentRequest, MacCredentials, transaction_params
    from agent.cmp.transaction import EnrollmentTransaction, Failed
    from agent.pki.statistics import CmpStatistics, LastRequest

    class Clock:
        def now(self):
            return datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)

    counter = itertools.count(1)
    rng = lambda size: next(counter).to_bytes(size, "big")  # noqa: E731
    key = ec.generate_private_key(ec.SECP256R1())
    anchor = _issuer()(key.public_key(), 1)
    request = EnrollmentRequest(kind="ir", server_url="http://unused/", new_key=key,
                                subject=anchor.subject, mac=MacCredentials(b"1", b"s"),
                                trusted=(anchor,))
    tx = EnrollmentTransaction(transaction_params(request, rng), Clock(), rng)
    sent = m.decode_message(tx.start().message)
    forger = ec.generate_private_key(ec.SECP256R1())
    sender = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CA\x01\x1b[2J")])
    fields = m.HeaderFields(sender, sent.sender, sent.transaction_id, b"\x05" * 16,
                            recip_nonce=sent.sender_nonce)
    forged = m.encode_message(fields, m.pki_conf_body(), m.SignatureProtector(anchor, forger))
    result = tx.receive(forged).result
    assert isinstance(result, Failed) and "CN=CA\x01\x1b[2J" in result.message
    stats = CmpStatistics(Clock().now())  # the reason as raw as the engine's message
    stats.last_request = LastRequest("ir", "manual", Clock().now(), result="failure",
                                     reason=result.message)
    shown = etree.tostring(stats.to_xml("statistics"), encoding="unicode")
    assert "no certificate of the sender CN=CA\\x01\\x1b[2J" in shown


def test_rpc_output_text_is_escaped_where_xml_cannot_carry_it():
    """cmp-general-request's status-text names certificates the CA sent (caCerts not kept,
    a CRL's issuer): their control characters come out escaped, not as a failed reply."""
    from agent.pki.rpcs import output_leaves

    leaves = output_leaves({"status-text": "not kept: CN=a\x01b", "crl": b"\x01"})
    assert [etree.tostring(el, encoding="unicode") for el in leaves] == [
        '<status-text xmlns="urn:cmp-agent:yang:cmp-agent-pki">not kept: CN=a\\x01b</status-text>',
        '<crl xmlns="urn:cmp-agent:yang:cmp-agent-pki">AQ==</crl>']


def test_ca_certs_not_kept_say_why(model, tmp_path):
    """caCerts (RFC 9483 4.3.1) are kept only with a path to an anchor; one that is not
    DER (Insta's encoding of basicConstraints, cA FALSE written out) is named with the
    cause (README "Trust model")."""
    from cmp_mock_pki import EXPLICIT_CA_FALSE, issue, with_extension_value
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from agent.cmp import messages as m
    from agent.cmp.transaction import GeneralResponse, MessageCounts

    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit root")])
    root = issue(root_name, root_key.public_key(), root_name, root_key, ca=True)
    sub = issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit sub")]),
                ec.generate_private_key(ec.SECP256R1()).public_key(), root_name, root_key, ca=True)
    ee = issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit ee")]),
               ec.generate_private_key(ec.SECP256R1()).public_key(), root_name, root_key, ca=False)
    bad = with_extension_value(ee, root_key, "2.5.29.19", EXPLICIT_CA_FALSE)
    datastores = Datastores(model, tmp_path, SecretBox.open(tmp_path))
    datastores.edit_config("candidate", etree.fromstring(CONFIG))
    datastores.commit()
    value = m.ca_certs_value([sub, bad])
    answer = GeneralResponse((m.InfoTypeAndValue(m.INFO_TYPES["caCerts"][1], value),), (),
                             MessageCounts({"genm": 1}, {"genp": 1}))
    service = PkiService(datastores, tmp_path, datastores.secrets,
                         enroll_fn=lambda request, **_: answer)
    service.certs.import_data("root.pem", root.public_bytes(serialization.Encoding.PEM).decode(),
                              trust_anchor=True)
    service.keys.import_pem("k1", ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode())
    reply = asyncio.run(service.general("s1", "ca-certs"))
    assert reply["ca-certificate-file"] == ["s1-cacert1.pem"]
    assert reply["status-text"] == (
        "caCerts: 2 certificate(s), 1 chained to a trust anchor; not kept: CA certificate"
        f" CN=unit ee (serial {bad.serial_number:X}) is refused: its extensions are not DER-encoded"
        ' (error parsing asn1 value: ParseError { kind: EncodedDefault, location:'
        ' ["BasicConstraints::ca"] }); the CA must re-issue it; cmp-agent\'s path validation'
        " (cryptography) refuses non-DER certificates")
