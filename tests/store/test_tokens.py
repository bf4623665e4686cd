"""Sidecar tokens: random, shown once, stored only as salted hashes, bound to one agent, revocable."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest

from agentcom.store import tokens
from agentcom.store.db import open_db


@pytest.fixture
def conn(tmp_path: Path) -> Any:
    c = open_db(tmp_path / "tokens.db")
    yield c
    c.close()


def _file_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


def test_tokens_are_random_and_verify_for_their_agent_only(conn: Any) -> None:
    a = tokens.create_token(conn, "agent-a")
    b = tokens.create_token(conn, "agent-b")
    assert a != b and a.startswith(tokens.TOKEN_PREFIX) and len(a) >= 40
    assert tokens.verify_token(conn, "agent-a", a)
    assert tokens.verify_token(conn, "agent-b", b)
    assert not tokens.verify_token(conn, "agent-a", b)  # bound to one agent_id
    assert not tokens.verify_token(conn, "agent-b", a)
    assert not tokens.verify_token(conn, "agent-a", a + "x")
    assert not tokens.verify_token(conn, "agent-a", "")
    assert not tokens.verify_token(conn, "nobody", a)


def test_only_salted_hashes_reach_the_file(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "tokens.db")
    minted = [tokens.create_token(conn, f"agent-{i}") for i in range(3)]
    rows = conn.execute("SELECT agent_id, salt, digest FROM agent_tokens ORDER BY agent_id").fetchall()
    assert len({r["salt"] for r in rows}) == 3 and all(len(r["salt"]) >= 16 for r in rows)
    for row, token in zip(rows, minted):
        assert row["digest"] != hashlib.sha256(token.encode()).digest()  # salted, not a bare hash
    raw_before_checkpoint = _file_bytes(tmp_path)  # main file, WAL and shm
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for raw in (raw_before_checkpoint, _file_bytes(tmp_path)):
        for token in minted:
            assert token.encode() not in raw
            assert token[len(tokens.TOKEN_PREFIX):].encode() not in raw


def test_revoke_and_create_again(conn: Any) -> None:
    old = tokens.create_token(conn, "agent-a")
    assert tokens.revoke_token(conn, "agent-a")
    assert not tokens.verify_token(conn, "agent-a", old)
    assert not tokens.revoke_token(conn, "agent-a")  # already revoked
    assert not tokens.revoke_token(conn, "never-had-one")
    [info] = tokens.list_tokens(conn)
    assert info.agent_id == "agent-a" and info.revoked_at is not None
    new = tokens.create_token(conn, "agent-a")
    assert tokens.verify_token(conn, "agent-a", new)
    assert not tokens.verify_token(conn, "agent-a", old)  # a new token replaces the old one
    [info] = tokens.list_tokens(conn)
    assert info.revoked_at is None


def test_list_is_sorted_and_shows_no_secrets(conn: Any) -> None:
    for agent in ("zeta", "alpha", "mid"):
        tokens.create_token(conn, agent)
    listed = tokens.list_tokens(conn)
    assert [i.agent_id for i in listed] == ["alpha", "mid", "zeta"]
    assert all(set(vars(i)) == {"agent_id", "created_at", "revoked_at"} for i in listed)


def test_verification_compares_in_constant_time(conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every check, right or wrong, known agent or not, goes through hmac.compare_digest or the same hash work."""
    compared: list[tuple[bytes, bytes]] = []
    hashed: list[bytes] = []
    real_compare, real_digest = hmac.compare_digest, tokens._digest

    def spy_compare(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real_compare(a, b)

    def spy_digest(salt: bytes, token: str) -> bytes:
        hashed.append(salt)
        return real_digest(salt, token)

    token = tokens.create_token(conn, "agent-a")
    monkeypatch.setattr(tokens.hmac, "compare_digest", spy_compare)
    monkeypatch.setattr(tokens, "_digest", spy_digest)
    assert tokens.verify_token(conn, "agent-a", token)
    assert not tokens.verify_token(conn, "agent-a", "acs_wrong")
    assert len(compared) == 2 and all(len(a) == len(b) == 32 for a, b in compared)
    assert not tokens.verify_token(conn, "unknown-agent", token)
    assert len(hashed) == 3  # an unknown agent costs the same hash
