"""Dataclass methods compiled once and kept between starts (agent/methodcache.py, issue 11):
the classes behave and their methods are the same code with the cache empty, filled or
absent; a damaged file, or one that others could change, is not used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: dataclasses of every kind the generator writes differently
CLASSES = """
import dataclasses, inspect, json
from dataclasses import InitVar, KW_ONLY, dataclass, field

@dataclass(frozen=True)
class Frozen:
    a: int
    b: str = "b"
    c: tuple = ()

@dataclass(order=True)
class Ordered:
    x: float
    tags: list = field(default_factory=list)
    scale: InitVar[int] = 1
    def __post_init__(self, scale):
        self.x *= scale

@dataclass(slots=True, eq=False)
class Slotted:
    _: KW_ONLY
    name: str
    size: int = 0

@dataclass(unsafe_hash=True, repr=False)
class Hashed:
    k: str

def observed():
    f = Frozen(1, c=(2,))
    try:
        f.a = 2
        frozen = "assigned"
    except dataclasses.FrozenInstanceError as exc:
        frozen = type(exc).__name__
    o1, o2 = Ordered(1.5, scale=2), Ordered(3.0)
    s = Slotted(name="n")
    methods = {f"{cls.__name__}.{name}": [list(fn.__code__.co_code), repr(fn.__code__.co_consts),
                                           fn.__code__.co_names, fn.__code__.co_filename,
                                           str(inspect.signature(fn))]
               for cls in (Frozen, Ordered, Slotted, Hashed)
               for name, fn in vars(cls).items()
               if callable(fn) and getattr(fn, "__code__", None) is not None
               and fn.__code__.co_filename == "<string>"}
    return [repr(f), f == Frozen(1, "b", (2,)), hash(f) == hash(Frozen(1, c=(2,))), frozen,
            repr(o1), o1 == o2, o1 < Ordered(3.5), repr(s), s == Slotted(name="n"),
            hash(Hashed("k")) == hash(Hashed("k")), repr(Hashed("k"))[:8], methods]
"""


def run(cache_file: Path | None) -> dict:
    """The classes made in a new interpreter, through a MethodCache on *cache_file*
    (None: plain dataclasses, the agent not imported)."""
    if cache_file is None:
        prelude = ""
    else:
        prelude = f"""
import dataclasses
from pathlib import Path
from agent.methodcache import MethodCache
cache = MethodCache(Path({str(cache_file)!r}))
cache.load()
loaded = len(cache.codes)
dataclasses.exec = cache.exec
"""
    code = prelude + CLASSES + f"""
result = {{"observed": observed()}}
{'' if cache_file is None else 'result.update(loaded=loaded, missed=cache.missed); cache.save()'}
print(json.dumps(result))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True, env=env)
    return json.loads(done.stdout.splitlines()[-1])


def test_cached_methods_are_the_methods_dataclasses_makes(tmp_path):
    cache_file = tmp_path / "__pycache__" / "methods.bin"
    plain = run(None)
    first = run(cache_file)
    assert cache_file.is_file() and first["loaded"] == 0 and first["missed"] > 10
    second = run(cache_file)
    assert second["loaded"] >= first["missed"] and second["missed"] == 0  # all from the file
    assert first["observed"] == second["observed"] == plain["observed"]
    assert len(plain["observed"][-1]) >= 10  # the methods compared: __init__, __repr__, ...


def test_a_damaged_or_others_writable_cache_is_not_used(tmp_path):
    cache_file = tmp_path / "methods.bin"
    plain = run(None)
    run(cache_file)
    cache_file.write_bytes(cache_file.read_bytes()[:100])  # truncated
    damaged = run(cache_file)
    assert damaged["loaded"] == 0 and damaged["observed"] == plain["observed"]
    cache_file.chmod(0o666)
    exposed = run(cache_file)
    assert exposed["loaded"] == 0 and exposed["observed"] == plain["observed"]


def test_no_file_where_bytecode_is_not_written(tmp_path):
    code = f"""
import dataclasses, sys
from pathlib import Path
from agent.methodcache import MethodCache
cache = MethodCache(Path({str(tmp_path / "methods.bin")!r}))
dataclasses.exec = cache.exec
@dataclasses.dataclass
class Point:
    x: int
cache.save()
print(cache.missed, Point(1))
"""
    done = subprocess.run([sys.executable, "-B", "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split()[0] != "0" and "Point(x=1)" in done.stdout
    assert not (tmp_path / "methods.bin").exists()


def test_classes_of_the_same_text_keep_their_own_defaults(tmp_path):
    """Classes whose generated methods are the same text (same field names, other
    defaults, factories, frozen classes' own class) share the cached code objects only:
    what differs reaches the methods as arguments of the code, never from the cache."""
    code = f"""
import dataclasses, json
from pathlib import Path
from agent.methodcache import MethodCache
cache = MethodCache(Path({str(tmp_path / "methods.bin")!r}))
cache.load()
dataclasses.exec = cache.exec
made = []
for default, factory in ((1, list), (2, dict), ("three", set)):
    @dataclasses.dataclass(frozen=True)
    class Same:
        x: object = default
        y: object = dataclasses.field(default_factory=factory)
    made.append(Same)
instances = [cls() for cls in made]
try:
    instances[1].x = 0
    frozen = "assigned"
except dataclasses.FrozenInstanceError:
    frozen = "refused"
missed = cache.missed
cache.save()
print(json.dumps([len(cache.codes), missed, [repr(i) for i in instances],
                  [made.index(type(i)) for i in instances], frozen]))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    results = [json.loads(subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                                         capture_output=True, text=True, check=True)
                          .stdout.splitlines()[-1]) for _ in range(2)]
    for _, _, shown, classes, frozen in results:
        assert shown == ["Same(x=1, y=[])", "Same(x=2, y={})", "Same(x='three', y=set())"]
        assert classes == [0, 1, 2] and frozen == "refused"
    assert results[0][1] > 0 and results[1][1] == 0  # the second run: all from the file


def test_a_cache_another_user_owns_is_not_used(tmp_path):
    """As a file others could write: its owner (not root, not us) could replace it."""
    if os.getuid() != 0:
        pytest.skip("changing a file's owner needs root")
    cache_file = tmp_path / "methods.bin"
    plain = run(None)
    run(cache_file)
    os.chown(cache_file, 65534, 65534)
    foreign = run(cache_file)
    assert foreign["loaded"] == 0 and foreign["observed"] == plain["observed"]


def test_the_file_goes_where_the_packages_bytecode_goes(tmp_path):
    """Beside the package's bytecode: in its __pycache__, or under the pycache prefix an
    installation sets (PYTHONPYCACHEPREFIX, -X pycache_prefix: a read-only one)."""
    show = "import agent.methodcache as m; print(m.CACHE_FILE)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
    plain, prefixed = (
        Path(subprocess.run([sys.executable, *flags, "-c", show], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=True).stdout.strip())
        for flags in ((), ("-X", f"pycache_prefix={tmp_path}")))
    package = Path(__import__("agent").__file__).resolve().parent
    assert plain.parent == package / "__pycache__"
    assert prefixed.parent == tmp_path / package.relative_to(package.anchor)
    assert plain.name == prefixed.name == f"dataclass-methods.{sys.implementation.cache_tag}.bin"


def test_the_commands_keep_the_methods_and_a_program_importing_agent_its_own(tmp_path):
    """The method cache, saved at exit, and the deferred imports are the cmp-agent
    command's (agent/cli.py prepare_process): a program that imports the package keeps
    its own dataclasses module and imports, and nothing is written at its exit."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path)  # where CACHE_FILE is, for these processes
    cache_file = Path(subprocess.run(
        [sys.executable, "-c", "import agent.methodcache as m; print(m.CACHE_FILE)"], cwd=ROOT,
        env=env, capture_output=True, text=True, check=True).stdout.strip())
    library = """
import dataclasses, json, sys
import agent.model, agent.cmp.cli
print(json.dumps([getattr(dataclasses, "exec", None) is None, "elementpath.xpath2" in sys.modules]))
"""
    done = subprocess.run([sys.executable, "-c", library], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == [True, True]  # elementpath as imported
    assert not cache_file.exists()
    subprocess.run([sys.executable, "-m", "agent", "cmp", "--help"], cwd=ROOT, env=env,
                   capture_output=True, text=True, check=True)
    # the command's dataclasses, compiled once, kept in the command's own file
    cmp_file = cache_file.with_name(f"dataclass-methods-cmp.{sys.implementation.cache_tag}.bin")
    assert cmp_file.is_file() and not cache_file.exists()


def test_each_command_has_its_own_file_beside_the_shared_one():
    import agent.methodcache as m

    files = {m.cache_file(c) for c in ("serve", "cmp", "cli", "user")}
    assert len(files) == 4 and m.CACHE_FILE not in files and m.cache_file() == m.CACHE_FILE
    assert all(f.parent == m.CACHE_FILE.parent for f in files)
    assert m.cache_file("cmp").name == f"dataclass-methods-cmp.{sys.implementation.cache_tag}.bin"


def test_forward_references_compile_once_and_as_typing_compiles_them(tmp_path):
    """typing's forward references (ForwardRef compiles the text as an expression)
    compile through the cache once installed: the same code as typing's own compile,
    from the file in a second process, and a text that is not an expression is refused
    as before; compile called otherwise is the builtin's."""
    code = """
import json, typing
from pathlib import Path
{prelude}
refs = [typing.ForwardRef(text) for text in ("ExtensionType", "list[int] | None", "a.b")]
codes = [[r.__forward_code__.co_code.hex(), r.__forward_code__.co_names,
          r.__forward_code__.co_flags, r.__forward_code__.co_filename] for r in refs]
try:
    typing.ForwardRef("not an expression")
except SyntaxError as error:
    refused = str(error)
other = typing.compile("x = 1", "f.py", "exec").co_filename if hasattr(typing, "compile") else "f.py"
print(json.dumps([codes, refused, other, {result}]))
"""
    with_cache = code.format(prelude=f"""
from agent.methodcache import install
cache = install(Path({str(tmp_path / 'methods.bin')!r}))
loaded = len(cache.codes)
""", result="[loaded, cache.missed, cache.save()]")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    seen = [json.loads(subprocess.run([sys.executable, "-c", text], cwd=ROOT, capture_output=True,
                                      text=True, check=True, env=env).stdout.splitlines()[-1])
            for text in (code.format(prelude="", result="None"), with_cache, with_cache)]
    plain, first, second = seen
    assert first[:3] == second[:3] == plain[:3]
    assert "Forward reference must be an expression" in plain[1] and plain[2] == "f.py"
    assert first[3][1] == 3 and second[3][:2] == [first[3][0] + 3, 0]  # from the file
