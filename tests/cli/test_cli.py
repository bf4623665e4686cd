"""``agentcom hub``, ``token``, ``submit`` and ``status`` as a user runs them, and how they fail."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import urllib.request
from pathlib import Path
from typing import Callable

import pytest

from .conftest import HubProcess, agentcom, one_line_error


def _get(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_hub_prints_its_real_url_and_stops_cleanly_on_sigterm(tmp_path: Path, hub_process: Callable[..., HubProcess],
                                                               cli_env: dict[str, str]) -> None:
    db = tmp_path / "data" / "hub.db"
    hub = hub_process(db)
    assert not hub.url.endswith(":0") and hub.url.startswith("http://127.0.0.1:")
    assert _get(hub.url + "/agentcom/health") == (200, _get(hub.url + "/agentcom/health")[1])
    assert db.with_suffix(".admin_token").stat().st_mode & 0o777 == 0o600

    submitted = agentcom("submit", "hello world", "--priority", "high", "--hub", hub.url, "--db", str(db), env=cli_env)
    assert submitted.returncode == 0, submitted.stderr
    task_id = submitted.stdout.strip()
    assert task_id.startswith("task-") and "\n" not in task_id

    code, out, err = hub.stop(signal.SIGTERM)
    assert code == 0, err
    assert "admin token in" in out and str(db.with_suffix(".admin_token")) in out and "shutting down" in out
    assert "Traceback" not in err
    conn = sqlite3.connect(db)  # nothing lost: the task is in the file
    assert conn.execute("SELECT status, priority FROM tasks WHERE task_id=?", (task_id,)).fetchone() == ("queued", 1)
    conn.close()


def test_sigint_stops_the_hub_too(tmp_path: Path, hub_process: Callable[..., HubProcess]) -> None:
    code, _, err = hub_process(tmp_path / "hub.db").stop(signal.SIGINT)
    assert code == 0 and "Traceback" not in err


def test_submit_and_status_against_a_running_hub(tmp_path: Path, hub_process: Callable[..., HubProcess],
                                                 cli_env: dict[str, str]) -> None:
    db = tmp_path / "hub.db"
    hub = hub_process(db)
    ids = []
    for args in (["first"], ["second", "--priority", "urgent", "--tier", "complex", "--shell-command", "ls"]):
        done = agentcom("submit", *args, "--hub", hub.url, "--token", hub.admin_token, env=cli_env)
        assert done.returncode == 0, done.stderr
        ids.append(done.stdout.strip())
    status, detail = _get(f"{hub.url}/agentcom/api/tasks/{ids[1]}", hub.admin_token)
    assert (detail["priority"], detail["tier"], detail["metadata"]) == ("urgent", "complex", {"shell_command": "ls"})

    cli_env = dict(cli_env, AGENTCOM_HUB=hub.url, AGENTCOM_ADMIN_TOKEN=hub.admin_token)  # the environment works too
    shown = agentcom("status", env=cli_env)
    assert shown.returncode == 0, shown.stderr
    assert "agents (0):" in shown.stdout and "queued=2" in shown.stdout and "totals:" in shown.stdout
    as_json = agentcom("status", "--json", env=cli_env)
    snapshot = json.loads(as_json.stdout)
    assert snapshot["queue"]["queued"] == 2 and set(snapshot) >= {"agents", "queue", "totals"}


def test_token_create_list_revoke(tmp_path: Path, cli_env: dict[str, str]) -> None:
    db = str(tmp_path / "hub.db")
    created = agentcom("token", "create", "agent-1", "--db", db, env=cli_env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("acs_") and created.stdout.count("\n") == 1
    assert "shown once" in created.stderr and token not in created.stderr
    assert all(token.encode() not in f.read_bytes() for f in tmp_path.glob("hub.db*"))  # only its hash is kept
    assert agentcom("token", "create", "agent-2", "--db", db, env=cli_env).returncode == 0
    listed = agentcom("token", "list", "--db", db, env=cli_env)
    assert listed.stdout.splitlines() == ["agent-1\tactive", "agent-2\tactive"]
    revoked = agentcom("token", "revoke", "agent-1", "--db", db, env=cli_env)
    assert revoked.returncode == 0 and revoked.stdout.strip() == "revoked agent-1"
    listed = agentcom("token", "list", "--db", db, env=cli_env)
    assert listed.stdout.splitlines() == ["agent-1\trevoked", "agent-2\tactive"]
    again = agentcom("token", "revoke", "agent-1", "--db", db, env=cli_env)
    assert "no active token" in one_line_error(again)


def test_the_default_db_lives_in_home(cli_env: dict[str, str]) -> None:
    assert agentcom("token", "create", "agent-1", env=cli_env).returncode == 0
    assert (Path(cli_env["HOME"]) / ".agentcom" / "hub.db").exists()
    env = dict(cli_env, AGENTCOM_DB=str(Path(cli_env["HOME"]) / "elsewhere.db"))
    assert agentcom("token", "create", "agent-1", env=env).returncode == 0
    assert (Path(cli_env["HOME"]) / "elsewhere.db").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("args", "says"), [
    (["submit"], "required: description"),
    (["submit", "x", "--priority", "asap"], "invalid choice: 'asap'"),
    (["status", "--bogus"], "unrecognized arguments"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
    (["hub", "--port", "abc"], "cannot parse 'abc'"),
    (["hub", "--port", "70000"], "port must be between 0 and 65535"),
    (["hub", "--lease-ms", "-5"], "lease_ms must be a positive"),
    (["hub", "--config", "/nonexistent/agentcom.toml"], "config file not found"),
    (["token", "create", "bad agent id"], "agent id 'bad agent id'"),
    (["submit", "x", "--hub", "ftp://example"], "--hub must be an http(s) URL"),
])
def test_bad_arguments_are_one_line_errors(tmp_path: Path, cli_env: dict[str, str], args: list[str], says: str) -> None:
    env = dict(cli_env, AGENTCOM_DB=str(tmp_path / "hub.db"))
    assert says in one_line_error(agentcom(*args, env=env))


def test_an_unreachable_hub_is_a_one_line_error(cli_env: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    for args in (["status"], ["submit", "x"]):
        line = one_line_error(agentcom(*args, "--hub", url, "--token", "t", env=cli_env))
        assert f"cannot reach the hub at {url}" in line


def test_a_bad_admin_token_is_a_one_line_error(tmp_path: Path, hub_process: Callable[..., HubProcess],
                                               cli_env: dict[str, str]) -> None:
    hub = hub_process(tmp_path / "hub.db")
    sidecar_token = agentcom("token", "create", "agent-1", "--db", str(tmp_path / "hub.db"), env=cli_env).stdout.strip()
    for token in ("aca_wrong", sidecar_token):
        for args in (["status"], ["submit", "x"]):
            line = one_line_error(agentcom(*args, "--hub", hub.url, "--token", token, env=cli_env))
            assert "refused the admin token (401)" in line
    no_token = one_line_error(agentcom("status", "--hub", hub.url, env=cli_env))  # no token anywhere
    assert "401" in no_token


def test_a_submission_the_hub_refuses_is_a_one_line_error(tmp_path: Path, hub_process: Callable[..., HubProcess],
                                                          cli_env: dict[str, str]) -> None:
    hub = hub_process(tmp_path / "hub.db")
    line = one_line_error(agentcom("submit", "x", "--shell-command", " ", "--hub", hub.url, "--token", hub.admin_token,
                                   env=cli_env))
    assert "422" in line and "shell_command" in line


def test_a_corrupt_database_is_a_one_line_error_at_start(tmp_path: Path, cli_env: dict[str, str]) -> None:
    db = tmp_path / "corrupt.db"
    db.write_bytes(b"definitely not sqlite" * 200)
    line = one_line_error(agentcom("hub", "--db", str(db), "--port", "0", env=cli_env, timeout=30))
    assert str(db) in line and "cannot be used" in line
    line = one_line_error(agentcom("token", "list", "--db", str(db), env=cli_env))
    assert str(db) in line


def test_a_database_in_an_unusable_place_is_a_one_line_error(tmp_path: Path, cli_env: dict[str, str]) -> None:
    (tmp_path / "a-file").write_text("x")
    line = one_line_error(agentcom("hub", "--db", str(tmp_path / "a-file" / "hub.db"), "--port", "0", env=cli_env))
    assert "cannot create the directory" in line


def test_a_port_in_use_is_a_one_line_error(tmp_path: Path, cli_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(agentcom("hub", "--db", str(tmp_path / "hub.db"), "--port", str(port), env=cli_env))
    assert f"cannot listen on 127.0.0.1:{port}" in line


def test_settings_come_from_flags_env_and_file(tmp_path: Path, hub_process: Callable[..., HubProcess],
                                               cli_env: dict[str, str]) -> None:
    config = tmp_path / "agentcom.toml"
    config.write_text("[agentcom]\nlease_ms = 4321\nmax_attempts = 5\n")
    cli_env["AGENTCOM_MAX_ATTEMPTS"] = "6"
    hub = HubProcess(tmp_path / "hub.db", cli_env, "--config", str(config), "--max-attempts", "7")
    try:
        submitted = agentcom("submit", "x", "--hub", hub.url, "--token", hub.admin_token, env=cli_env)
        _, detail = _get(f"{hub.url}/agentcom/api/tasks/{submitted.stdout.strip()}", hub.admin_token)
        assert detail["max_attempts"] == 7  # the flag beats the environment and the file
    finally:
        assert hub.stop()[0] == 0
    hub = HubProcess(tmp_path / "hub.db", cli_env, "--config", str(config))
    try:
        submitted = agentcom("submit", "x", "--hub", hub.url, "--token", hub.admin_token, env=cli_env)
        _, detail = _get(f"{hub.url}/agentcom/api/tasks/{submitted.stdout.strip()}", hub.admin_token)
        assert detail["max_attempts"] == 6  # the environment beats the file
    finally:
        assert hub.stop()[0] == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[agentcom]\nlease_ms = 'soon'\n")
    assert "lease_ms" in one_line_error(agentcom("hub", "--config", str(bad), "--db", str(tmp_path / "x.db"),
                                                 env=cli_env))
    bad.write_text("[agentcom]\nnot_a_setting = 1\n")
    assert "unknown setting(s): not_a_setting" in one_line_error(
        agentcom("hub", "--config", str(bad), "--db", str(tmp_path / "x.db"), env=cli_env))
