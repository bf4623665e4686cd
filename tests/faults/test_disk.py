"""A hub whose disk fills up or turns read-only while it runs: it refuses new work with a clear
error, keeps everything it had, keeps serving reads, and carries on once it can write again.

The faults are real SQLite conditions on the hub's own live connection (we run as root, so
chmod stops nothing):

- disk full: ``PRAGMA max_page_count`` lowered to what the file holds now. A write that needs
  a new page fails with SQLITE_FULL ("database or disk is full"), exactly as on a full
  disk, and SQLite rolls back the *whole* open transaction, not just that statement.
- read-only connection: ``PRAGMA query_only``; every write, BEGIN IMMEDIATE included, fails
  with SQLITE_READONLY ("attempt to write a readonly database").
- read-only file: ``chattr +i`` on the DB and its WAL. The kernel then refuses writes to the
  already open files even for root (EPERM), as after a read-only remount: the statements
  run in the page cache and the COMMIT fails with SQLITE_IOERR_WRITE. Needs root and a
  file system with the immutable flag (ext4, xfs, btrfs); skipped elsewhere.

After every fault the file passes ``PRAGMA integrity_check``, every task the hub accepted is
in it, and memory agrees with it (``hub.test_invariants._check``).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from agentcom import Hub
from agentcom.client import HubClient
from agentcom.errors import StoreUnavailable
from agentcom.protocol import messages as m
from agentcom.store.db import open_db, transaction
from agentcom.store.tasks import TaskStore
from hub.conftest import make_hub, sidecar_ws  # noqa: F401  (fixtures shared with the hub tests)
from hub.test_invariants import _check
from hub.wire import Api, result

pytestmark = pytest.mark.anyio

BIG = "x" * 200_000  # spans ~50 overflow pages: never fits in the free space of existing pages
UNLIMITED_PAGES = 1_073_741_823  # SQLite's default max_page_count


def _fill(hub: Hub, spare_pages: int = 0) -> None:
    """The disk is full: the file may grow by ``spare_pages`` pages at most."""
    pages = hub.conn.execute("PRAGMA page_count").fetchone()[0]
    hub.conn.execute(f"PRAGMA max_page_count = {pages + spare_pages}")


def _free(hub: Hub) -> None:
    hub.conn.execute(f"PRAGMA max_page_count = {UNLIMITED_PAGES}")


def _healthy(hub: Hub, accepted: list[str]) -> None:
    """The file is intact, holds every task the hub accepted, and memory agrees with it."""
    assert hub.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {r[0] for r in hub.conn.execute("SELECT task_id FROM tasks")}
    assert set(accepted) <= stored
    _check(hub, [])


@contextlib.contextmanager
def _immutable(*files: Path) -> Iterator[None]:
    """``chattr +i`` on ``files`` for the block (always undone, or the test's files stay undeletable)."""
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("chattr is not installed")
    done = subprocess.run([chattr, "+i", *map(str, files)], capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run([chattr, "-i", *map(str, files)], capture_output=True)
        pytest.skip(f"cannot make files immutable here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", *map(str, files)], check=True)


async def _assigned(hub: Hub, sidecar: Any, api: Api) -> tuple[str, dict[str, Any]]:
    task_id = await api.submit(description="job")
    assign = await sidecar.assignment()
    assert assign["task_id"] == task_id
    await sidecar.accept(assign)
    return task_id, assign


async def test_a_full_disk_refuses_submits_keeps_reads_and_recovers(make_hub) -> None:
    hub = await make_hub()
    api = Api(hub)
    try:
        accepted = [await api.submit(description=f"before {i}") for i in range(3)]
        _fill(hub)

        status, body = await api.call("POST", "/agentcom/api/tasks", {"description": BIG[:9_000]})
        assert status == 503 and body["error"] == "store_unavailable", body
        assert "database or disk is full" in body["message"]
        with pytest.raises(StoreUnavailable):
            hub.submit_dict({"description": BIG[:9_000]})  # the Python API says the same
        status, listing = await api.call("GET", "/agentcom/api/tasks")  # reads go on
        assert status == 200 and sorted(t["task_id"] for t in listing["tasks"]) == sorted(accepted)
        status, snapshot = await api.call("GET", "/agentcom/api/snapshot")
        assert status == 200 and snapshot["queue"]["queued"] == 3
        _healthy(hub, accepted)

        _free(hub)
        accepted.append(await api.submit(description=BIG[:9_000]))
        assert hub.core.counts["queued"] == 4
        _healthy(hub, accepted)
    finally:
        api.close()


async def test_a_completion_the_full_disk_refuses_is_answered_and_the_session_goes_on(make_hub, sidecar_ws) -> None:
    hub = await make_hub()
    api = Api(hub)
    try:
        sidecar = await sidecar_ws(hub)
        task_id, assign = await _assigned(hub, sidecar, api)
        _fill(hub)

        await sidecar.send(m.TaskComplete(task_id=task_id, generation=assign["generation"], result=result(output=BIG)))
        error = await sidecar.error("store_unavailable")
        assert "database or disk is full" in error["message"] and error["task_id"] == task_id
        await sidecar.nothing_else()  # the socket is still served: ping -> pong, and no ack came
        detail = await api.task(task_id)
        assert (detail["status"], detail["result"]) == ("working", None)
        assert hub.conn.execute("SELECT count(*) FROM executions").fetchone()[0] == 0
        _healthy(hub, [task_id])

        _free(hub)
        await sidecar.complete(assign, output=BIG)  # the same frame again: acknowledged now
        detail = await api.task(task_id)
        assert detail["status"] == "completed" and detail["result"]["output"] == BIG
        assert hub.core.snapshot()["totals"]["tokens_out"] == 20
        _healthy(hub, [task_id])
    finally:
        api.close()


async def _two_held_then_full(hub: Hub, sidecar_ws: Any, api: Api,
                               *accepted: str) -> tuple[Any, str, str, dict[str, Any], Any]:
    """One sidecar holds two tasks, "first" and "second", those named in ``accepted`` accepted; then the
    disk fills, leaving room for an accept (a row update, a history line) but not for BIG."""
    sidecar = await sidecar_ws(hub, concurrency=2)
    first = await api.submit(description="first")
    second = await api.submit(description="second")
    assigns = {a["task_id"]: a for a in [await sidecar.assignment(), await sidecar.assignment()]}
    for name, task_id in (("first", first), ("second", second)):
        if name in accepted:
            await sidecar.accept(assigns[task_id])
    _fill(hub, spare_pages=8)
    return sidecar, first, second, assigns, hub.core.agents["agent-1"]


async def test_a_turn_whose_transaction_sqlite_rolled_back_acknowledges_none_of_it(make_hub, sidecar_ws) -> None:
    """Two frames in one loop turn share a group commit; the second fills the disk and SQLite
    rolls the whole transaction back, the first frame's write with it: that write must not be
    acknowledged and memory must forget it too."""
    hub = await make_hub()
    api = Api(hub)
    try:
        sidecar, first, second, assigns, agent = await _two_held_then_full(hub, sidecar_ws, api, "second")

        hub.store.group.begin()  # what the socket handler does for frames read in one turn
        hub.core.accepted(agent, m.TaskAccepted(task_id=first, generation=assigns[first]["generation"]))
        assert hub.core.tasks[first].status == "working"
        with pytest.raises(StoreUnavailable):
            hub.core.complete(agent, m.TaskComplete(task_id=second, generation=assigns[second]["generation"],
                                                    result=result(output=BIG)))
        assert hub.core.tasks[first].status == "assigned"  # memory is back to what the file holds
        events = [r[0] for r in hub.conn.execute("SELECT event FROM task_history WHERE task_id = ?", (first,))]
        assert "accepted" not in events  # the reload's reads did not write the lost turn's history line
        assert await hub.store.group.committed() is False

        code, reason = await sidecar.closed()  # its held ack acknowledged a lost write
        assert code == 1011 and "could not store" in (reason or "")
        statuses = dict(hub.conn.execute("SELECT task_id, status FROM tasks").fetchall())
        assert statuses == {first: "assigned", second: "working"}
        _healthy(hub, [first, second])

        _free(hub)
        again = await sidecar_ws(hub, concurrency=2, resume=[m.ResumeEntry(task_id=t, generation=a["generation"])
                                                             for t, a in assigns.items()])
        assert {(await again.recv())["type"] for _ in assigns} == {"task_continue"}
        await again.run(assigns[first])
        await again.complete(assigns[second])
        assert hub.core.counts["completed"] == 2
        _healthy(hub, [first, second])
    finally:
        api.close()


async def test_a_lost_turn_writes_none_of_its_deferred_rows_and_totals_stay_the_files(make_hub, sidecar_ws) -> None:
    """Execution rows and history lines wait for the turn's commit. When SQLite drops the turn (disk full),
    the reload that follows reads totals; that read must not write the lost turn's rows on their own."""
    hub = await make_hub()
    api = Api(hub)
    try:
        _, first, second, assigns, agent = await _two_held_then_full(hub, sidecar_ws, api, "first", "second")

        hub.store.group.begin()
        hub.core.complete(agent, m.TaskComplete(task_id=first, generation=assigns[first]["generation"], result=result()))
        with pytest.raises(StoreUnavailable):
            hub.core.complete(agent, m.TaskComplete(task_id=second, generation=assigns[second]["generation"],
                                                    result=result(output=BIG)))
        assert await hub.store.group.committed() is False
        assert hub.conn.execute("SELECT count(*) FROM executions").fetchone()[0] == 0
        assert hub.conn.execute("SELECT count(*) FROM task_history WHERE event = 'completed'").fetchone()[0] == 0
        assert hub.core.totals_nano == hub.store.totals_nano()

        _free(hub)
        again = await sidecar_ws(hub, concurrency=2, resume=[m.ResumeEntry(task_id=t, generation=a["generation"])
                                                             for t, a in assigns.items()])
        assert {(await again.recv())["type"] for _ in assigns} == {"task_continue"}
        await again.complete(assigns[first])
        await again.complete(assigns[second])
        assert hub.conn.execute("SELECT count(*) FROM executions").fetchone()[0] == 2
        assert hub.conn.execute("SELECT count(*) FROM task_history WHERE event = 'completed'").fetchone()[0] == 2
        assert hub.core.totals_nano == hub.store.totals_nano() and hub.core.totals_nano["executions"] == 2
        _healthy(hub, [first, second])
    finally:
        api.close()


async def test_a_group_commit_whose_transaction_vanished_fails_whole_and_keeps_every_waiter(tmp_path, anyio_backend) -> None:
    """The store alone: write A, write B fills the disk (SQLite drops the transaction, A with it),
    write C opens a new one in the same turn. Nothing of the turn may be committed, and A's
    waiter, registered before the loss, must still hear of it."""
    conn = open_db(tmp_path / "group.db")
    store = TaskStore(conn)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 8}")
    heard: list[tuple[str, bool]] = []
    failures: list[str] = []
    store.group.on_failure.append(lambda: failures.append("reload"))

    store.group.begin()
    with transaction(conn):
        conn.execute("INSERT INTO agent_tokens(agent_id, salt, digest, created_at) VALUES ('a', x'00', x'00', 1)")
    store.group.after_commit(lambda ok: heard.append(("a", ok)))
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
        with transaction(conn):
            conn.execute("INSERT INTO agent_tokens(agent_id, salt, digest, created_at) VALUES ('b', ?, x'00', 1)",
                         (BIG.encode(),))
    assert not conn.in_transaction  # SQLite rolled back the whole transaction, not just B
    with transaction(conn):
        conn.execute("INSERT INTO agent_tokens(agent_id, salt, digest, created_at) VALUES ('c', x'00', x'00', 1)")
    store.group.after_commit(lambda ok: heard.append(("c", ok)))

    assert await store.group.committed() is False
    assert heard == [("a", False), ("c", False)] and failures == ["reload"]
    assert conn.execute("SELECT count(*) FROM agent_tokens").fetchone()[0] == 0
    assert not conn.in_transaction and conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


async def test_a_read_only_connection_refuses_writes_and_recovers(make_hub, sidecar_ws) -> None:
    hub = await make_hub()
    api = Api(hub)
    try:
        sidecar = await sidecar_ws(hub)
        task_id, assign = await _assigned(hub, sidecar, api)
        hub.conn.execute("PRAGMA query_only = ON")

        status, body = await api.call("POST", "/agentcom/api/tasks", {"description": "more work"})
        assert status == 503 and body["error"] == "store_unavailable", body
        assert "readonly" in body["message"]
        status, body = await api.call("POST", f"/agentcom/api/tasks/{task_id}/cancel")
        assert status == 503 and body["error"] == "store_unavailable", body
        await sidecar.send(m.TaskComplete(task_id=task_id, generation=assign["generation"], result=result()))
        await sidecar.error("store_unavailable")
        await sidecar.nothing_else()
        assert (await api.task(task_id))["status"] == "working"
        _healthy(hub, [task_id])

        hub.conn.execute("PRAGMA query_only = OFF")
        await sidecar.complete(assign)
        accepted = [task_id, await api.submit(description="more work")]
        assert hub.core.counts["completed"] == 1 and hub.core.counts["assigned"] == 1
        _healthy(hub, accepted)
    finally:
        api.close()


async def test_an_immutable_file_fails_the_commit_and_nothing_is_acknowledged(make_hub, sidecar_ws, tmp_path) -> None:
    db = tmp_path / "ro.db"
    hub = await make_hub(db_path=str(db))
    api = Api(hub)
    try:
        sidecar = await sidecar_ws(hub)
        task_id, assign = await _assigned(hub, sidecar, api)
        with _immutable(db, Path(f"{db}-wal")):
            status, body = await api.call("POST", "/agentcom/api/tasks", {"description": "more work"})
            assert status == 503 and body["error"] == "store_unavailable", body
            assert len(hub.core.tasks) == 1  # the refused task is not kept in memory either

            await sidecar.send(m.TaskComplete(task_id=task_id, generation=assign["generation"], result=result()))
            code, _ = await sidecar.closed()  # the commit under its ack failed: reconnect and resume
            assert code == 1011
            status, detail = await api.call("GET", f"/agentcom/api/tasks/{task_id}")
            assert status == 200 and detail["status"] == "working"
            _healthy(hub, [task_id])

        again = await sidecar_ws(hub, resume=[m.ResumeEntry(task_id=task_id, generation=assign["generation"])])
        await again.expect("task_continue", task_id=task_id)
        await again.complete(assign)
        accepted = [task_id, await api.submit(description="more work")]
        assert len(accepted) == len(set(accepted)) and hub.core.counts["completed"] == 1
        _healthy(hub, accepted)
    finally:
        api.close()


async def test_work_the_hub_could_not_assign_while_read_only_is_assigned_once_it_can_write(make_hub, sidecar_ws) -> None:
    hub = await make_hub()
    api = Api(hub)
    try:
        task_id = await api.submit(description="waits for a sidecar")
        token = hub.create_agent_token("agent-1")
        hub.conn.execute("PRAGMA query_only = ON")
        sidecar = await sidecar_ws(hub, "agent-1", token)  # identify only reads; its assignment is refused
        await sidecar.nothing_else()
        assert hub.core.tasks[task_id].status == "queued" and hub.core.agents["agent-1"].tasks == {}
        _healthy(hub, [task_id])

        hub.conn.execute("PRAGMA query_only = OFF")  # the lease sweep's next tick schedules again
        assign = await sidecar.assignment()
        assert assign["task_id"] == task_id
        await sidecar.run(assign)
        _healthy(hub, [task_id])
    finally:
        api.close()


async def test_an_outcome_refused_for_a_full_disk_is_offered_again_on_the_same_connection(
        make_hub, tmp_path: Path) -> None:
    """A real sidecar finishes while the hub's disk is full: the hub refuses the outcome with
    ``store_unavailable`` and keeps the task open; the sidecar offers the outcome again (backoff)
    without reconnecting, and once the disk has room the task completes, once."""
    from sidecar.harness import SidecarProcess, eventually

    hub = await make_hub()
    token = hub.create_agent_token("disk-agent")
    sidecar = await SidecarProcess(hub.url, "disk-agent", token, tmp_path).start()
    try:
        await eventually(lambda: hub.core.agents.get("disk-agent"), "the sidecar to connect")
        # Big output: its executions row needs new pages, which a full disk cannot give.
        command = "python3 -c \"import time; time.sleep(1.5); print('y' * 200000)\""
        task = hub.submit_dict({"description": "print a lot", "complexity_tier": "trivial",
                                "metadata": {"shell_command": command}})
        def status() -> str:
            return str(hub.conn.execute("SELECT status FROM tasks WHERE task_id = ?", (task.task_id,)).fetchone()[0])

        await eventually(lambda: status() == "working", "the task to start")
        _fill(hub)
        await eventually(lambda: "hub error store_unavailable" in sidecar.log_path.read_text(), "a refused outcome", 60)
        assert status() == "working"   # refused, kept open, nothing half written
        _free(hub)
        await eventually(lambda: status() == "completed", "the task to complete", 60)
        assert sidecar.runs == 1 and "hub unreachable" not in sidecar.log_path.read_text()
        assert "sending its outcome again" in sidecar.log_path.read_text()
        rows = hub.conn.execute("SELECT COUNT(*) FROM executions WHERE task_id = ?", (task.task_id,)).fetchone()[0]
        assert rows == 1
        _healthy(hub, [task.task_id])
        assert hub.core.agents["disk-agent"].online   # the same session all along
    finally:
        await sidecar.stop()


async def test_health_says_when_the_store_refuses_writes_and_when_it_writes_again(make_hub) -> None:
    """A monitor learns of the fault from the public /health: 503 "degraded" with the store's error
    while writes are refused, 200 "ok" once a write goes through again."""
    hub = await make_hub()
    api = Api(hub)
    try:
        await api.submit(description="before")
        assert await api.call("GET", "/agentcom/health", token=None) == (200, {
            "status": "ok", "version": hub.version, "agents": 0,
            "store": {"writable": True, "error": None, "failed_at": None}})

        _fill(hub)
        status, _ = await api.call("POST", "/agentcom/api/tasks", {"description": BIG[:9_000]})
        assert status == 503
        status, health = await api.call("GET", "/agentcom/health", token=None)
        assert (status, health["status"], health["store"]["writable"]) == (503, "degraded", False)
        assert "database or disk is full" in health["store"]["error"]
        assert isinstance(health["store"]["failed_at"], int)
        assert health["error"] == "store_unavailable" and "database or disk is full" in health["message"]
        with pytest.raises(StoreUnavailable, match="cannot write its store: database or disk is full"):
            await HubClient(hub.url).ahealth()  # the Python client says it as it says other refusals
        with pytest.raises(StoreUnavailable, match="database or disk is full"):
            await HubClient(hub.url, hub.admin_token).asubmit(BIG[:9_000])  # and a refused submit too

        _free(hub)
        await api.submit(description="after")
        status, health = await api.call("GET", "/agentcom/health", token=None)
        assert (status, health["status"], health["store"]["writable"]) == (200, "ok", True)

        hub.conn.execute("PRAGMA query_only = ON")  # even BEGIN is refused: no group commit runs at all
        status, _ = await api.call("POST", "/agentcom/api/tasks", {"description": "refused"})
        assert status == 503
        status, health = await api.call("GET", "/agentcom/health", token=None)
        assert status == 503 and "readonly" in health["store"]["error"]
        hub.conn.execute("PRAGMA query_only = OFF")
        await api.submit(description="again")
        assert (await api.call("GET", "/agentcom/health", token=None))[0] == 200
    finally:
        api.close()


def test_a_write_outside_a_group_commit_also_clears_a_refusal_on_record(tmp_path) -> None:
    conn = open_db(tmp_path / "standalone.db")
    store = TaskStore(conn)
    store.group.refused(sqlite3.OperationalError("database or disk is full"))
    assert store.group.failure is not None and store.group.failure[1] == "database or disk is full"
    with pytest.raises(sqlite3.OperationalError):
        with transaction(conn):  # a write that fails keeps it on record
            conn.execute("INSERT INTO no_such_table VALUES (1)")
    assert store.group.failure is not None
    with transaction(conn):  # no event loop: this commits on its own
        conn.execute("INSERT INTO agent_tokens(agent_id, salt, digest, created_at) VALUES ('a', x'00', x'00', 1)")
    assert store.group.failure is None
    conn.close()


async def test_an_idle_hub_finds_out_by_itself_that_its_store_writes_again(make_hub, monkeypatch) -> None:
    """A hub out of rotation for its 503 gets no writes that could clear the refusal: /health itself
    checks an old refusal with one small write, and a refusal that still holds stays reported."""
    import asyncio

    from agentcom import connect
    from agentcom.store import db

    hub = await make_hub()
    api = Api(hub)
    try:
        hub.conn.execute("PRAGMA query_only = ON")
        assert (await api.call("POST", "/agentcom/api/tasks", {"description": "refused"}))[0] == 503
        # a client can still be opened on the degraded hub (its health check answers 503): reads go on
        client = await asyncio.to_thread(connect, hub.url, hub.admin_token)
        assert (await client.asnapshot())["queue"]["queued"] == 0
        monkeypatch.setattr(db, "RECHECK_MS", 0)  # every refusal on record is old enough to check again
        status, health = await api.call("GET", "/agentcom/health", token=None)
        assert status == 503 and "readonly" in health["store"]["error"]  # checked, and still refused
        hub.conn.execute("PRAGMA query_only = OFF")
        assert (await api.call("GET", "/agentcom/health", token=None))[0] == 200  # no other write came
        assert hub.conn.execute("SELECT count(*) FROM meta WHERE key = 'write_checked_at'").fetchone()[0] == 1
    finally:
        api.close()


def test_a_refusal_on_record_does_not_keep_a_closed_store_alive(tmp_path) -> None:
    import gc
    import weakref

    from agentcom.store import db

    conn = open_db(tmp_path / "closed.db")
    store = TaskStore(conn)
    store.group.refused(sqlite3.OperationalError("disk I/O error"))
    key, group = id(conn), weakref.ref(store.group)
    assert db._refused.get(key) is store.group
    conn.close()
    del store, conn
    gc.collect()
    assert group() is None and key not in db._refused
