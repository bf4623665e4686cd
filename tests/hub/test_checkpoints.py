"""The hub copies its WAL back into the file from a thread, and checkpoints on its loop only as a backstop."""

from __future__ import annotations

import pytest

from agentcom.store.checkpoint import BACKSTOP_PAGES
from agentcom.store.db import WAL_AUTOCHECKPOINT_PAGES

from .wire import Api, eventually

pytestmark = pytest.mark.anyio


def _autocheckpoint(hub) -> int:
    return int(hub.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


async def test_a_hub_checkpoints_from_its_thread_and_stops_it_when_it_stops(make_hub) -> None:
    hub = await make_hub()
    assert _autocheckpoint(hub) in (WAL_AUTOCHECKPOINT_PAGES, BACKSTOP_PAGES)  # raised once the thread has worked
    checkpointer = hub.checkpointer
    assert checkpointer.path == hub.settings.db_path
    await eventually(lambda: _autocheckpoint(hub) == BACKSTOP_PAGES, "the backstop once a checkpoint worked")
    api = Api(hub)
    try:
        await api.submit(description="a write for the WAL")
        done = checkpointer.checkpoints
        await eventually(lambda: checkpointer.checkpoints > done, "another checkpoint")
    finally:
        api.close()
    thread = checkpointer._thread
    await hub.stop()
    assert thread is not None and not thread.is_alive() and checkpointer._thread is None
