"""Sidecar tokens: random, shown once, stored only as salted hashes, bound to one agent_id."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass

from agentcom.store.db import transaction

TOKEN_PREFIX = "acs_"


@dataclass(frozen=True)
class TokenInfo:
    agent_id: str
    created_at: int
    revoked_at: int | None


def _digest(salt: bytes, token: str) -> bytes:
    return hashlib.sha256(salt + token.encode("utf-8")).digest()


def create_token(conn: sqlite3.Connection, agent_id: str) -> str:
    """Mint a token for ``agent_id`` (replacing any previous one) and return it; only its hash is kept."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    with transaction(conn):
        conn.execute(
            "INSERT INTO agent_tokens(agent_id, salt, digest, created_at, revoked_at) VALUES (?,?,?,?,NULL) "
            "ON CONFLICT(agent_id) DO UPDATE SET salt=excluded.salt, digest=excluded.digest, "
            "created_at=excluded.created_at, revoked_at=NULL",
            (agent_id, salt, _digest(salt, token), int(time.time() * 1000)),
        )
    return token


def verify_token(conn: sqlite3.Connection, agent_id: str, token: str) -> bool:
    """Constant-time check that ``token`` is the live token of ``agent_id``."""
    row = conn.execute("SELECT salt, digest, revoked_at FROM agent_tokens WHERE agent_id=?", (agent_id,)).fetchone()
    if row is None:
        _digest(b"\0" * 16, token)  # same work either way
        return False
    ok = hmac.compare_digest(_digest(row["salt"], token), row["digest"])
    return ok and row["revoked_at"] is None


def live_digests(conn: sqlite3.Connection, agent_id: str | None = None) -> dict[str, bytes]:
    """The stored digest of each agent's unrevoked token (of ``agent_id`` alone if given):
    a revoke removes an entry, a re-mint changes it."""
    if agent_id is None:
        rows = conn.execute("SELECT agent_id, digest FROM agent_tokens WHERE revoked_at IS NULL").fetchall()
    else:
        rows = conn.execute("SELECT agent_id, digest FROM agent_tokens WHERE revoked_at IS NULL AND agent_id=?",
                            (agent_id,)).fetchall()
    return {r["agent_id"]: bytes(r["digest"]) for r in rows}


def revoke_token(conn: sqlite3.Connection, agent_id: str) -> bool:
    with transaction(conn):
        cur = conn.execute(
            "UPDATE agent_tokens SET revoked_at=? WHERE agent_id=? AND revoked_at IS NULL",
            (int(time.time() * 1000), agent_id),
        )
    return cur.rowcount > 0


def list_tokens(conn: sqlite3.Connection) -> list[TokenInfo]:
    rows = conn.execute("SELECT agent_id, created_at, revoked_at FROM agent_tokens ORDER BY agent_id").fetchall()
    return [TokenInfo(r["agent_id"], r["created_at"], r["revoked_at"]) for r in rows]
