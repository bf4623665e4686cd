"""A real hub, sidecar subprocesses, the shell executor and the stand-in LLM servers, end to end."""

from __future__ import annotations

import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from .harness import Api, e2e, eventually, kill_quietly, pid_alive, start_hub

pytestmark = pytest.mark.usefixtures("anyio_backend")

PY = shlex.quote(sys.executable)


def python(code: str) -> str:
    """A shell_command running ``code`` with this interpreter (no shell involved)."""
    return f"{PY} -c {shlex.quote(code)}"


def pid_then_sleep(pid_file: Path, seconds: float, then: str = "done") -> str:
    return python(f"import os, time; open({str(pid_file)!r}, 'a').write(f'{{os.getpid()}}\\n'); "
                  f"time.sleep({seconds}); print({then!r})")


def journal_state(state_dir: Path, task_id: str) -> str | None:
    """What the sidecar's journal file says about a task (None: not in hand)."""
    path = state_dir / "journal.json"
    tasks = json.loads(path.read_text())["tasks"] if path.exists() else []
    return next((t["state"] for t in tasks if t["task_id"] == task_id), None)


def first_run_hangs(pid_file: Path, then: str = "finished") -> str:
    """Records its pid; the first run then sleeps a minute (it can only end by being killed), later
    runs print ``then`` at once. So a first run left behind by a crash is still there to be seen."""
    return python(f"import os, sys, time; f = open({str(pid_file)!r}, 'a'); f.write(f'{{os.getpid()}}\\n'); f.close()\n"
                  f"if len(open({str(pid_file)!r}).read().split()) == 1: time.sleep(60)\n"
                  f"print({then!r})")


def started(pid_file: Path) -> bool:
    return pid_file.exists() and bool(pid_file.read_text().strip())


@pytest.mark.anyio
async def test_shell_output_streams_to_the_hub_and_one_execution_is_recorded(tmp_path: Path) -> None:
    async with e2e(tmp_path) as env:
        api, events = env.api, env.record_events()
        await env.sidecar("agent-1")
        task_id = await api.shell(python("for i in range(5): print('line', i, flush=True)"))

        task = await eventually(lambda: api.status_is(task_id, "completed"), "the shell task to complete")
        assert task["result"]["output"].splitlines() == [f"line {i}" for i in range(5)]
        mine = [e for e in events if e["task_id"] == task_id]
        assert [e["text"] for e in mine if e["event_type"] == "stdout"] == [f"line {i}" for i in range(5)]
        assert [e["seq"] for e in mine] == list(range(mine[0]["seq"], mine[0]["seq"] + len(mine)))
        assert {(e["generation"], e["agent_id"]) for e in mine} == {(task["generation"], "agent-1")}

        [row] = await api.executions(task_id)
        assert (row["status"], row["agent_id"], row["tokens_in"], row["tokens_out"]) == ("success", "agent-1", 0, 0)
        assert row["estimated_cost_usd"] == 0


def rendezvous(mine: Path, other: Path) -> str:
    """A command that succeeds only if the other one runs at the same time (gives up after 20 s)."""
    return python(f"import os, sys, time; open({str(mine)!r}, 'w').close()\n"
                  f"for _ in range(400):\n"
                  f"    if os.path.exists({str(other)!r}): print('met'); sys.exit(0)\n"
                  f"    time.sleep(0.05)\n"
                  f"sys.exit(1)")


@pytest.mark.anyio
async def test_a_sidecar_runs_as_many_tasks_at_once_as_its_concurrency(tmp_path: Path) -> None:
    async with e2e(tmp_path) as env:
        api = env.api
        await env.sidecar("agent-1", "--concurrency", "2")
        first = await api.shell(rendezvous(tmp_path / "a", tmp_path / "b"))
        second = await api.shell(rendezvous(tmp_path / "b", tmp_path / "a"))
        for task_id in (first, second):
            task = await eventually(lambda: api.status_is(task_id, "completed", "failed"), f"{task_id} to finish")
            assert task["status"] == "completed" and task["result"]["output"].strip() == "met"


@pytest.mark.anyio
async def test_a_sidecar_with_its_own_openai_server_gets_openai_tasks_without_a_registered_endpoint(
        tmp_path: Path) -> None:
    # default (model) routing, and a fallback wait no task here outlasts: an assignment means no wait
    async with e2e(tmp_path, fallback_wait_ms=600_000, tier_targets={"standard": "openai:smollm2"}) as env:
        api = env.api
        await env.sidecar("agent-1", "--openai-url", "http://127.0.0.1:9")  # the sidecar only says it has one
        agent = await eventually(lambda: env.hub.core.agents.get("agent-1"), "agent-1 to identify")
        assert "serves:openai" in agent.capabilities
        task_id = await api.submit("Explain what a binary search does", complexity_tier="standard")

        async def routed() -> dict[str, Any] | None:
            decision: dict[str, Any] | None = (await api.task(task_id))["routing_decision"]
            return decision

        decision = await eventually(routed, f"{task_id} to be routed")
        assert (decision["target_type"], decision["selected_endpoint"], decision["selected_model"]) == \
            ("openai", None, "smollm2")
        assert decision["fallback_used"] is False


@pytest.mark.anyio
async def test_llm_tasks_stream_tokens_and_record_costs(tmp_path: Path) -> None:
    async with e2e(tmp_path) as env:
        api, events = env.api, env.record_events()
        env.hub.settings.tier_targets = {"standard": "ollama:simulated-llama3.2",
                                         "complex": "claude:claude-sonnet-4-5"}
        ollama, anthropic = await env.ollama(), await env.anthropic()
        await env.sidecar("agent-1", "--ollama-url", ollama.url, "--anthropic-base-url", anthropic.url)
        standard = await api.submit("Explain what a binary search does", complexity_tier="standard")
        complex_ = await api.submit("Design the migration of the billing service", complexity_tier="complex")
        for task_id in (standard, complex_):
            await eventually(lambda: api.status_is(task_id, "completed"), f"{task_id} to complete")

        local = (await api.executions(standard))[0]
        assert local["model_used"].startswith("simulated-llama3.2")
        assert local["tokens_in"] > 0 and local["tokens_out"] > 0
        assert local["estimated_cost_usd"] == 0 and local["equivalent_claude_cost_usd"] > 0

        cloud = (await api.executions(complex_))[0]
        assert cloud["model_used"].startswith("simulated-claude")  # a stand-in run never passes for a real one
        assert cloud["tokens_out"] > 0 and cloud["equivalent_claude_cost_usd"] > 0

        tokens = [e for e in events if e["task_id"] == standard and e["event_type"] == "token"]
        assert tokens and "".join(e["text"] for e in tokens).strip()
        counts = [e["tokens_so_far"] for e in tokens if e["tokens_so_far"] is not None]
        assert counts == sorted(counts)


@pytest.mark.anyio
async def test_cancel_kills_the_running_process(tmp_path: Path) -> None:
    async with e2e(tmp_path) as env:
        api, events = env.api, env.record_events()
        pid_file = tmp_path / "pids"
        await env.sidecar("agent-1")
        task_id = await api.shell(pid_then_sleep(pid_file, 60))
        await eventually(lambda: started(pid_file), "the command to start")
        pid = int(pid_file.read_text().split()[0])
        try:
            assert (await api.cancel(task_id))["status"] == "cancelled"
            await eventually(lambda: not pid_alive(pid), "the cancelled command to die", timeout=15)
        finally:
            kill_quietly(pid)
        assert (await api.task(task_id))["status"] == "cancelled"
        assert await api.executions(task_id) == []
        after = await api.shell(python("print('next')"))  # the sidecar is free again
        await eventually(lambda: api.status_is(after, "completed"), "the next task to complete")
        assert not [e for e in events if e["task_id"] == task_id and e["event_type"] in ("stdout", "error")]


@pytest.mark.anyio
async def test_retryable_failures_end_in_dead_letter(tmp_path: Path) -> None:
    async with e2e(tmp_path) as env:
        api = env.api
        await env.sidecar("agent-1")
        task_id = await api.shell(python("import time; time.sleep(30)"), max_attempts=2, metadata={"timeout_ms": 300})
        task = await eventually(lambda: api.status_is(task_id, "dead_letter"), "the task to reach dead letter")
        assert task["attempts"] == 2
        rows = await api.executions(task_id)
        assert len(rows) == 2 and {r["status"] for r in rows} == {"failed"}
        assert "timed out" in task["last_error"]


@pytest.mark.anyio
async def test_a_sidecar_killed_mid_task_resumes_it_after_restart(tmp_path: Path) -> None:
    """The command the killed sidecar left running is killed by the restarted one before the task runs again."""
    # a lease long enough for the restart, so the hub answers the resume with task_continue
    async with e2e(tmp_path, lease_ms=20_000) as env:
        api = env.api
        pid_file = tmp_path / "pids"
        sidecar = await env.sidecar("agent-1")
        task_id = await api.shell(first_run_hangs(pid_file))
        await eventually(lambda: started(pid_file), "the command to start")
        orphan = int(pid_file.read_text().split()[0])
        generation = (await api.task(task_id))["generation"]
        try:
            sidecar.send_signal(signal.SIGKILL)
            await sidecar.wait()
            assert pid_alive(orphan)  # nothing stopped it: it outlives its sidecar

            await sidecar.start()  # same agent, same state dir: the journal offers the task for resume
            task = await eventually(lambda: api.status_is(task_id, "completed"), "the resumed task to complete")
            assert not pid_alive(orphan)  # killed before the task ran again, so it never ran twice at once
        finally:
            kill_quietly(orphan)  # only if the test failed: it sleeps a minute
        assert task["result"]["output"].strip() == "finished"
        assert task["generation"] == generation  # continued, not reassigned
        assert len(pid_file.read_text().split()) == 2  # and really run again
        rows = await api.executions(task_id)
        assert len(rows) == 1 and rows[0]["status"] == "success"
        assert "running it again" in sidecar.output()
        assert f"killed process group {orphan} of task {task_id}" in sidecar.output()


@pytest.mark.anyio
async def test_a_sidecar_back_after_its_lease_drops_the_task_the_hub_reclaimed(tmp_path: Path) -> None:
    async with e2e(tmp_path, lease_ms=600) as env:
        api = env.api
        pid_file = tmp_path / "pids"
        sidecar = await env.sidecar("agent-1")
        task_id = await api.shell(first_run_hangs(pid_file))
        await eventually(lambda: started(pid_file), "the command to start")
        orphan = int(pid_file.read_text().split()[0])
        generation = (await api.task(task_id))["generation"]
        try:
            sidecar.send_signal(signal.SIGKILL)
            await sidecar.wait()
            await eventually(lambda: api.status_is(task_id, "queued"), "the hub to reclaim the task")
            assert pid_alive(orphan)

            await sidecar.start()
            task = await eventually(lambda: api.status_is(task_id, "completed"), "the reassigned task to complete")
            assert not pid_alive(orphan)  # the task was let go and run anew: its first command is gone
        finally:
            kill_quietly(orphan)  # only if the test failed: it sleeps a minute
        assert task["generation"] > generation
        assert "reassigned it; dropping it" in sidecar.output()
        rows = await api.executions(task_id)
        assert len(rows) == 1 and rows[0]["status"] == "success"


@pytest.mark.anyio
async def test_a_hub_restart_under_a_running_sidecar(tmp_path: Path) -> None:
    """The task finishes while the hub is down: its output and outcome reach the new hub."""
    async with e2e(tmp_path) as env:
        pid_file = tmp_path / "pids"
        sidecar = await env.sidecar("agent-1")
        task_id = await env.api.shell(pid_then_sleep(pid_file, 1.0, then="survived"))
        await eventually(lambda: started(pid_file), "the command to start")
        port = env.hub.port
        assert port is not None
        await env.hub.stop()
        await eventually(lambda: journal_state(sidecar.state_dir, task_id) == "finished",
                         "the sidecar to finish the task while the hub is down")

        second = await start_hub(tmp_path / "hub.db", port=port, admin_token=env.hub.admin_token)
        events: list[dict[str, Any]] = []
        second.core.pubsub.subscribe(lambda topic, message: events.append(message), ("execution",))
        try:
            api = Api(second.url, second.admin_token)
            task = await eventually(lambda: api.status_is(task_id, "completed"), "the task to complete on the new hub")
            assert task["result"]["output"].strip() == "survived"
            assert len(pid_file.read_text().split()) == 1  # carried on, not run again
            assert len(await api.executions(task_id)) == 1
            assert "survived" in [e["text"] for e in events if e["task_id"] == task_id]  # buffered output too
            await eventually(lambda: journal_state(sidecar.state_dir, task_id) is None, "the journal to let go")
            later = await api.shell(python("print('after restart')"))
            await eventually(lambda: api.status_is(later, "completed"), "a new task to run after the restart")
        finally:
            await env.stop_sidecars()
            await second.stop()


@pytest.mark.anyio
async def test_sigterm_stops_the_work_and_the_task_is_not_lost(tmp_path: Path) -> None:
    async with e2e(tmp_path) as env:
        api = env.api
        pid_file = tmp_path / "pids"
        sidecar = await env.sidecar("agent-1")
        task_id = await api.shell(pid_then_sleep(pid_file, 60))
        await eventually(lambda: started(pid_file), "the command to start")
        pid = int(pid_file.read_text().split()[0])
        try:
            sidecar.send_signal(signal.SIGTERM)
            assert await sidecar.wait() == 0
            assert not pid_alive(pid)
        finally:
            kill_quietly(pid)
        assert "Traceback" not in sidecar.output()
        assert journal_state(sidecar.state_dir, task_id) == "running"  # kept for a resume
        task = await eventually(lambda: api.status_is(task_id, "queued"), "the hub to reclaim it after the lease")
        assert task["attempts"] == 1
