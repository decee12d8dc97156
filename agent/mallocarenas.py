"""One malloc arena for the whole agent (glibc's ``M_ARENA_MAX``; issue 11).

glibc's malloc gives each thread that allocates an arena of its own, up to
eight per core, and keeps the pages touched there. CPython's small objects
come from its own pools, but lxml, the ciphers' buffers and every object over
512 bytes come from malloc: the agent's worker threads (the commit's file
writer, the parser of large messages, CMP transactions, the log writer) grew
arenas whose pages stayed in the agent's proportional set size
(``memory_pss_20_sessions_kb`` of ``tools/bench/bench_netconf.py``: about
5 MB of 82, 6 %). The threads mostly take turns under the GIL, so the agent
keeps them all in the main arena, as ``MALLOC_ARENA_MAX=1`` in the
environment would; an arena limit an operator set (``MALLOC_ARENA_MAX``, or
``glibc.malloc.arena_max`` in ``GLIBC_TUNABLES``) is left to glibc.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: ``mallopt``'s parameter number for the arena limit (glibc ``malloc.h``)
M_ARENA_MAX = -8


def limit_arenas(count: int = 1) -> bool:
    """Let glibc's malloc make at most *count* arenas; whether it was set.

    Nothing is set on other systems, by a C library without ``mallopt`` (or
    whose ``mallopt`` refuses it), or when the environment sets the limit
    (``MALLOC_ARENA_MAX``, or the tunable ``glibc.malloc.arena_max``). Call it
    before the agent starts its threads: an arena a thread already has stays.
    """
    if not sys.platform.startswith("linux") or operator_limit():
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: its M_ARENA_MAX is what this sets
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(M_ARENA_MAX, count) == 1


def operator_limit() -> bool:
    """Whether the environment sets glibc's arena limit itself."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return "MALLOC_ARENA_MAX" in os.environ or any(
        item.partition("=")[0].strip() == "glibc.malloc.arena_max"
        for item in tunables.split(":"))
