"""``cmp-agent serve`` set-up: the agent's own log and accept errors (issue 9)."""

from __future__ import annotations

import asyncio
import logging
import os
import stat

from agent.serve import PrivateRotatingFileHandler, _quiet_accept_errors


def test_log_is_rotated_by_size_and_stays_private(tmp_path):
    old = os.umask(0)
    try:
        handler = PrivateRotatingFileHandler(tmp_path / "agent.log", maxBytes=1000,
                                             backupCount=2, encoding="utf-8")
        logger = logging.getLogger("test.rotation")
        logger.propagate = False
        logger.addHandler(handler)
        for i in range(200):
            logger.warning("line %d of a flood", i)
        handler.close()
    finally:
        os.umask(old)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["agent.log", "agent.log.1", "agent.log.2"]
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= 1000
        assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_accept_errors_are_logged_once_per_interval(caplog):
    async def scenario():
        loop = asyncio.get_running_loop()
        _quiet_accept_errors(loop)
        for _ in range(500):  # what asyncio reports per failed accept()
            loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                         "exception": OSError(24, "Too many open files")})

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    accept = [r for r in caplog.records if "accept" in r.getMessage()]
    assert len(accept) == 1
    assert "Too many open files" in accept[0].getMessage()
    assert accept[0].exc_info is None  # no traceback
