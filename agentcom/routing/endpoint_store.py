"""Persisting endpoints in the SQLite ``endpoints`` table (schema in ``agentcom.store.schema``).

Plain functions over a ``sqlite3.Connection``: each write is one statement, so it is
atomic on its own and joins the caller's transaction when one is open. If the
connection is not in autocommit mode and no transaction was open, the write is
committed here so it is never left pending.
"""

from __future__ import annotations

import json
import sqlite3

from agentcom.errors import StoreError, ValidationFailed
from agentcom.routing.addresses import parse_endpoint_id
from agentcom.routing.endpoints import EndpointView, Status

__all__ = ["delete_endpoint", "load_endpoints", "save_endpoint"]

_COLUMNS = ("endpoint_id", "kind", "host", "port", "name", "source", "agent_id", "status", "models",
            "loaded_models", "consecutive_failures", "last_error", "registered_at", "last_checked_at")


def _write(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> int:
    was_open = conn.in_transaction
    try:
        cursor = conn.execute(sql, params)
        if not was_open and conn.in_transaction:
            conn.commit()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot write the endpoints table: {exc}") from None
    return cursor.rowcount


def save_endpoint(conn: sqlite3.Connection, view: EndpointView) -> None:
    """Insert or update one endpoint row."""
    values = (view.endpoint_id, view.kind, view.host, view.port, view.name, view.source, view.agent_id,
              view.status, json.dumps(list(view.models)), json.dumps(list(view.loaded_models)),
              view.consecutive_failures, view.last_error, view.registered_at, view.last_checked_at)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
    _write(conn, f"INSERT INTO endpoints ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
                 f"ON CONFLICT(endpoint_id) DO UPDATE SET {updates}", values)


def delete_endpoint(conn: sqlite3.Connection, endpoint_id: str) -> bool:
    """Remove one endpoint row; False if there was none."""
    return _write(conn, "DELETE FROM endpoints WHERE endpoint_id = ?", (endpoint_id,)) > 0


def _tuple_of_str(raw: object) -> tuple[str, ...]:
    try:
        items = json.loads(raw) if isinstance(raw, str) else []
    except json.JSONDecodeError:
        return ()
    return tuple(item for item in items if isinstance(item, str)) if isinstance(items, list) else ()


def load_endpoints(conn: sqlite3.Connection) -> list[EndpointView]:
    """Every stored endpoint, oldest registration first. Rows whose id no longer parses are skipped."""
    try:
        rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM endpoints ORDER BY registered_at, endpoint_id").fetchall()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the endpoints table: {exc}") from None
    views = []
    for row in rows:
        values = dict(zip(_COLUMNS, tuple(row)))
        kind = values["kind"] if values["kind"] in ("ollama", "openai") else "ollama"
        try:
            address = parse_endpoint_id(values["endpoint_id"], kind)
        except ValidationFailed:
            continue
        status: Status = values["status"] if values["status"] in ("unknown", "healthy", "unhealthy") else "unknown"
        views.append(EndpointView(
            endpoint_id=values["endpoint_id"], kind=kind, scheme=address.scheme, host=address.host,
            port=address.port, name=values["name"], source=values["source"] or "manual",
            agent_id=values["agent_id"], status=status, models=_tuple_of_str(values["models"]),
            loaded_models=_tuple_of_str(values["loaded_models"]),
            consecutive_failures=int(values["consecutive_failures"] or 0), last_error=values["last_error"],
            registered_at=int(values["registered_at"] or 0), last_checked_at=values["last_checked_at"],
        ))
    return views
