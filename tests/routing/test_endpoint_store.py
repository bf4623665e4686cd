"""The endpoints table: round trips, updates, deletes, and what survives bad rows."""

from __future__ import annotations

import sqlite3

import pytest

from agentcom.errors import StoreError
from agentcom.routing.addresses import parse_address
from agentcom.routing.endpoint_store import delete_endpoint, load_endpoints, save_endpoint
from agentcom.routing.endpoints import EndpointView, after_failure, after_success
from agentcom.store.schema import MIGRATIONS


def view(address: str = "10.0.0.5:11434", kind: str = "ollama", **changes: object) -> EndpointView:
    return EndpointView.new(parse_address(address, kind=kind), kind=kind, now=1_000, name="gpu").replace(**changes)


def test_round_trip_and_update(db: sqlite3.Connection) -> None:
    first = view()
    save_endpoint(db, first)
    checked = after_success(first, ("llama3.2:latest",), ("llama3.2:latest",), now=2_000)
    save_endpoint(db, checked)
    https = view("https://api.box:8443", kind="openai", source="auto", agent_id="agent-1")
    save_endpoint(db, https)
    assert load_endpoints(db) == [checked, https]
    assert https.endpoint_id == "https://api.box:8443" and https.base_url == "https://api.box:8443"


def test_delete(db: sqlite3.Connection) -> None:
    save_endpoint(db, view())
    assert delete_endpoint(db, "10.0.0.5:11434") is True
    assert delete_endpoint(db, "10.0.0.5:11434") is False
    assert load_endpoints(db) == []


def test_failures_and_errors_are_stored(db: sqlite3.Connection) -> None:
    failed = after_failure(after_failure(view(), "HTTP 500: boom", now=5), "timed out", now=6)
    save_endpoint(db, failed)
    (loaded,) = load_endpoints(db)
    assert (loaded.status, loaded.consecutive_failures, loaded.last_error, loaded.last_checked_at) == (
        "unhealthy", 2, "timed out", 6)


def test_rows_written_by_hand_are_read_leniently(db: sqlite3.Connection) -> None:
    db.execute("INSERT INTO endpoints (endpoint_id, kind, host, port, source, status, models, registered_at) "
               "VALUES ('box:11434', 'ollama', 'box', 11434, 'manual', 'weird', 'not json', 1)")
    db.execute("INSERT INTO endpoints (endpoint_id, kind, host, port, source, registered_at) "
               "VALUES ('not an id', 'ollama', 'x', 1, 'manual', 2)")
    (only,) = load_endpoints(db)
    assert (only.endpoint_id, only.status, only.models) == ("box:11434", "unknown", ())


def test_a_write_is_committed_on_a_non_autocommit_connection(tmp_path) -> None:
    path = tmp_path / "hub.db"
    conn = sqlite3.connect(path)  # default isolation level: implicit transactions
    conn.executescript(MIGRATIONS[0])
    save_endpoint(conn, view())
    other = sqlite3.connect(path)
    assert [v.endpoint_id for v in load_endpoints(other)] == ["10.0.0.5:11434"]
    other.close()
    conn.close()


def test_a_write_joins_an_open_transaction(db: sqlite3.Connection) -> None:
    db.execute("BEGIN")
    save_endpoint(db, view())
    db.execute("ROLLBACK")
    assert load_endpoints(db) == []


def test_store_errors_are_translated() -> None:
    conn = sqlite3.connect(":memory:")  # no schema
    with pytest.raises(StoreError):
        save_endpoint(conn, view())
    with pytest.raises(StoreError):
        load_endpoints(conn)
