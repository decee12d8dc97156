"""The compiled YANG model kept between starts (agent/modelcache.py, issue 11):
used only when it was compiled from the same modules, compiled again when it
is missing, stale, damaged or writable by others."""

from __future__ import annotations

import copy
import dataclasses
import gc
import hashlib
import pickle
import re
import shutil
import stat

import pytest

from agent.model import MODULES, Model, _module_info
import agent.modelcache as modelcache
from agent.modelcache import ModelCache

PROBE = "cache-probe-leaf"


@pytest.fixture
def modules(tmp_path):
    """The agent's modules, cmp-agent-pki read from a copy the test may edit."""
    copy = tmp_path / "yang"
    copy.mkdir()
    mods = [_module_info(*entry) for entry in MODULES]
    pki = next(m for m in mods if m.name == "cmp-agent-pki")
    shutil.copy(pki.path, copy / pki.path.name)
    return [dataclasses.replace(m, path=copy / m.path.name) if m is pki else m for m in mods]


def load(modules, cache: ModelCache) -> Model:
    return Model(modules, cache.read(modules))


def probe_node(model: Model):
    return model.datamodel.get_schema_node(f"/cmp-agent-pki:pki/{PROBE}")


def add_probe_leaf(modules) -> list:
    """Edit cmp-agent-pki; the modules as the next start reads them (with the new text's digest)."""
    path = next(m.path for m in modules if m.name == "cmp-agent-pki")
    text = path.read_text()
    anchor = "  container pki {\n"
    assert anchor in text
    path.write_text(text.replace(anchor, anchor + f"    leaf {PROBE} {{ type string; }}\n", 1))
    return [dataclasses.replace(m, text_sha256=hashlib.sha256(path.read_bytes()).hexdigest())
            if m.path == path else m for m in modules]


def test_a_written_model_is_used_and_equals_the_compiled_one(modules, tmp_path):
    cache = ModelCache(tmp_path / "state" / "compiled-model.pickle")
    compiled = load(modules, cache)
    assert cache.outcome == "missing"
    cache.write(compiled.datamodel)
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600

    again = ModelCache(cache.path)
    cached = load(modules, again)
    assert again.outcome == "used"
    assert cached.datamodel.schema_digest() == compiled.datamodel.schema_digest()
    assert cached.datamodel.ascii_tree() == compiled.datamodel.ascii_tree()
    assert cached.secret_leaves == compiled.secret_leaves
    assert cached.nacm_annotations == compiled.nacm_annotations
    # the patterns still work after the round trip (re.Pattern is compiled again on load)
    for model in (compiled, cached):
        login_time = model.datamodel.get_schema_node(
            "/ietf-netconf-monitoring:netconf-state/sessions/session/login-time")
        assert "2026-12-02T01:00:00Z" in login_time.type
        assert "yesterday" not in login_time.type


def test_an_edited_module_is_compiled_again_and_seen(modules, tmp_path):
    cache = ModelCache(tmp_path / "compiled-model.pickle")
    before = load(modules, cache)
    cache.write(before.datamodel)
    assert probe_node(before) is None

    modules = add_probe_leaf(modules)
    stale = ModelCache(cache.path)
    after = load(modules, stale)
    assert stale.outcome == "stale"
    assert probe_node(after) is not None
    stale.write(after.datamodel)

    fresh = ModelCache(cache.path)
    assert probe_node(load(modules, fresh)) is not None
    assert fresh.outcome == "used"


@pytest.mark.parametrize("damage", ["garbage", "truncated", "not a model"])
def test_a_damaged_cache_is_compiled_again(modules, tmp_path, damage):
    cache = ModelCache(tmp_path / "compiled-model.pickle")
    model = load(modules, cache)
    cache.write(model.datamodel)
    header, _, body = cache.path.read_bytes().partition(b"\n")

    body = {"garbage": b"\x80\x05not a pickle at all",
            "truncated": body[: len(body) // 2],
            "not a model": pickle.dumps({"schema": None})}[damage]
    cache.path.write_bytes(header + b"\n" + body)
    damaged = ModelCache(cache.path)
    again = load(modules, damaged)
    assert damaged.outcome.startswith("unreadable")
    assert again.datamodel.schema_digest() == model.datamodel.schema_digest()


def test_a_cache_others_could_change_is_not_loaded(modules, tmp_path):
    directory = tmp_path / "state"
    cache = ModelCache(directory / "compiled-model.pickle")
    model = load(modules, cache)
    cache.write(model.datamodel)
    cache.path.chmod(0o622)
    ignored = ModelCache(cache.path)
    load(modules, ignored)
    assert ignored.outcome.startswith("ignored")
    cache.path.chmod(0o600)
    directory.chmod(0o777)
    ignored = ModelCache(cache.path)
    load(modules, ignored)
    assert ignored.outcome.startswith("ignored")
    directory.chmod(0o700)
    ok = ModelCache(cache.path)
    load(modules, ok)
    assert ok.outcome == "used"


def test_another_yangson_makes_it_stale(modules, tmp_path, monkeypatch):
    cache = ModelCache(tmp_path / "compiled-model.pickle")
    cache.write(load(modules, cache).datamodel)
    monkeypatch.setattr(modelcache, "_yangson_fingerprint", lambda: b"yangson 99")
    other = ModelCache(cache.path)
    load(modules, other)
    assert other.outcome == "stale"


def test_the_agent_keeps_its_compiled_model_and_uses_it(agent_process, tmp_path):
    state = tmp_path / "state"
    agent = agent_process(state).start()
    try:
        assert "YANG model compiled (cache missing)" in agent.log_text()
        cache = state / "compiled-model.pickle"
        assert stat.S_IMODE(cache.stat().st_mode) == 0o600
        written = cache.stat().st_mtime_ns
        agent.restart()
        assert "YANG model compiled" not in agent.log_text()
        assert cache.stat().st_mtime_ns == written
        cache.write_bytes(cache.read_bytes()[:1000])  # damaged: compiled and replaced
        agent.restart()
        assert "YANG model compiled (cache unreadable" in agent.log_text()
        assert ModelCache(cache).read([_module_info(*e) for e in MODULES]) is not None
    finally:
        agent.stop()


def test_loading_leaves_the_collector_as_it_was(modules, tmp_path):
    """The cyclic garbage collector is paused while the pickle loads (modelcache's
    _collector_paused), and afterwards enabled or disabled as before, also when the
    file is damaged."""
    cache = ModelCache(tmp_path / "compiled-model.pickle")
    cache.write(load(modules, cache).datamodel)
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            again = ModelCache(cache.path)
            assert again.read(modules) is not None and again.outcome == "used"
            assert gc.isenabled() is enabled
        header, _, body = cache.path.read_bytes().partition(b"\n")
        cache.path.write_bytes(header + b"\n" + body[: len(body) // 2])
        damaged = ModelCache(cache.path)
        assert damaged.read(modules) is None and damaged.outcome.startswith("unreadable")
        assert gc.isenabled() is False
    finally:
        gc.enable()


def _patterns(datamodel) -> list:
    """Every regular expression of the model's types (yangson's Pattern.regex)."""
    found, seen = [], set()

    def walk(node):
        if id(node) in seen:
            return
        seen.add(id(node))
        kind = getattr(node, "type", None)
        for pattern in getattr(kind, "patterns", ()) or ():
            found.append(pattern.regex)
        for member in getattr(kind, "types", ()) or ():  # a union's members
            for pattern in getattr(member, "patterns", ()) or ():
                found.append(pattern.regex)
        for child in getattr(node, "children", ()) or ():
            walk(child)

    walk(datamodel.schema)
    return found


def test_the_cached_models_patterns_are_compiled_at_first_use(modules, tmp_path):
    """Unpickling re.Pattern compiles it; the cache keeps source and flags instead, and
    each pattern is compiled when a value is first checked against it, with the same
    answers (ietf-inet-types' addresses, with their Unicode zone classes, among them)."""
    cache = ModelCache(tmp_path / "compiled-model.pickle")
    compiled = load(modules, cache)
    cache.write(compiled.datamodel)
    cached = load(modules, ModelCache(cache.path))
    before, after = _patterns(compiled.datamodel), _patterns(cached.datamodel)
    assert len(before) == len(after) > 10
    assert all(isinstance(p, re.Pattern) for p in before)
    assert all(type(p) is modelcache.PatternAtFirstUse and p._compiled is None for p in after)
    assert [(p.pattern, p.flags) for p in before] == [(p.pattern, p.flags) for p in after]
    assert any("%" in p.pattern for p in after)  # an address with a zone
    samples = ["192.0.2.1", "192.0.2.1%eth0", "2001:db8::1", "fe80::1%\u00e9th0", "CN=x",
               "/CN=a/O=b", "2026-12-02T01:00:00Z", "ab", "xml", "", "a\nb", "256.1.1.1"]
    for old, new in zip(before, after):
        for text in samples:
            assert bool(old.match(text)) == bool(new.match(text))
            assert new.search(text) == old.search(text) or \
                (new.search(text) and new.search(text).span() == old.search(text).span())
        assert new._compiled is not None and new == old
    # what the cache writes again stays uncompiled
    again = ModelCache(tmp_path / "again.pickle")
    again.read(modules)
    again.write(cached.datamodel)
    third = load(modules, ModelCache(again.path))
    assert all(p._compiled is None for p in _patterns(third.datamodel))


def test_a_pattern_at_first_use_answers_as_the_compiled_one():
    source, flags = r"^(?:[0-9]+(?:\.[0-9]+)*)$(?!\n\Z)", re.UNICODE
    lazy, real = modelcache.PatternAtFirstUse(source, flags), re.compile(source, flags)
    assert (lazy.pattern, lazy.flags) == (real.pattern, real.flags) and lazy._compiled is None
    for text in ("1.2.3", "1.", "x", "1.2\n"):
        assert bool(lazy.match(text)) == bool(real.match(text))
        assert bool(lazy.fullmatch(text)) == bool(real.fullmatch(text))
    assert lazy.compiled() is lazy.compiled() and lazy.groups == real.groups
    for copied in (pickle.loads(pickle.dumps(lazy)), copy.deepcopy(lazy), copy.copy(lazy)):
        assert type(copied) is modelcache.PatternAtFirstUse and copied == lazy
        assert copied._compiled is None or copied is lazy
        assert bool(copied.match("4.5")) and not copied.match("4.")
    assert hash(lazy) == hash(modelcache.PatternAtFirstUse(source, flags))
