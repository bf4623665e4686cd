"""Shell executor: argv vs shell, streaming, exit codes, timeout, cancellation, environment."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from agentcom.executors import Outcome, Output, ShellExecutor, process_groups
from agentcom.executors.process_groups import ProcessGroup

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("anyio_backend")]  # one backend (see conftest)
PY = sys.executable


async def run(executor: ShellExecutor, task: Any) -> tuple[list[Output], Outcome]:
    outputs: list[Output] = []
    outcome: Outcome | None = None
    async for step in executor.run(task):
        if isinstance(step, Outcome):
            outcome = step
        else:
            outputs.append(step)
    assert outcome is not None
    return outputs, outcome


def shell_task(make_task: Any, command: Any, **metadata: Any) -> Any:
    return make_task("sidecar", metadata={"shell_command": command, **metadata})


async def test_streams_stdout_and_stderr_line_by_line(make_task: Any, workdir: Path) -> None:
    code = "import sys; print('one'); print('warn', file=sys.stderr); print('two')"
    outputs, outcome = await run(ShellExecutor(workdir), shell_task(make_task, [PY, "-c", code]))
    assert [o.text for o in outputs if o.kind == "stdout"] == ["one", "two"]
    assert [o.text for o in outputs if o.kind == "stderr"] == ["warn"]
    assert outcome.ok and outcome.output == "one\ntwo\n"
    assert (outcome.model_used, outcome.tokens_in, outcome.tokens_out) == ("shell", 0, 0)


async def test_command_string_is_split_without_a_shell(make_task: Any, workdir: Path) -> None:
    _, outcome = await run(ShellExecutor(workdir), shell_task(make_task, "echo 'a   b' $HOME ; ls"))
    assert outcome.output == "a   b $HOME ; ls\n"


async def test_shell_true_uses_a_shell_in_the_workdir(make_task: Any, workdir: Path) -> None:
    (workdir / "marker.txt").write_text("x")
    task = shell_task(make_task, "echo $AGENTCOM_TASK_ID && ls | grep marker", shell=True)
    _, outcome = await run(ShellExecutor(workdir), task)
    assert outcome.output == "task-1\nmarker.txt\n"


async def test_nonzero_exit_fails_with_stderr_tail(make_task: Any, workdir: Path) -> None:
    code = "import sys; print('partial'); sys.stderr.write('first\\nboom: bad input\\n'); sys.exit(3)"
    _, outcome = await run(ShellExecutor(workdir), shell_task(make_task, [PY, "-c", code]))
    assert outcome.error == "exit code 3: first\nboom: bad input"
    assert outcome.retryable is False
    assert outcome.output == "partial\n"


async def test_exit_code_without_stderr(make_task: Any, workdir: Path) -> None:
    _, outcome = await run(ShellExecutor(workdir), shell_task(make_task, "false"))
    assert outcome.error == "exit code 1" and not outcome.retryable


@pytest.mark.parametrize(("meta", "message"), [
    ({}, "no metadata.shell_command"),
    ({"shell_command": "   "}, "no metadata.shell_command"),
    ({"shell_command": "echo 'unbalanced"}, "cannot parse shell_command"),
    ({"shell_command": "no-such-command-agentcom --x"}, "command not found: 'no-such-command-agentcom'"),
    ({"shell_command": "true", "timeout_ms": -5}, "timeout_ms must be a positive number"),
])
async def test_unrunnable_tasks_fail_without_retry(make_task: Any, workdir: Path, meta: dict[str, Any],
                                                   message: str) -> None:
    outputs, outcome = await run(ShellExecutor(workdir), make_task("sidecar", metadata=meta))
    assert outputs == []
    assert outcome.error is not None and message in outcome.error
    assert outcome.retryable is False


async def test_missing_workdir_is_the_sidecars_problem(make_task: Any, tmp_path: Path) -> None:
    """Another sidecar has its workdir: refused before acceptance, and retryable if run anyway."""
    executor = ShellExecutor(tmp_path / "gone")
    task = shell_task(make_task, "true")
    _, outcome = await run(executor, task)
    assert outcome.error is not None and "does not exist" in outcome.error and outcome.retryable
    assert executor.refusal(task) == outcome.error


async def test_each_spawned_group_is_reported_while_it_runs(make_task: Any, workdir: Path) -> None:
    """``on_spawn`` hears of the command's group (pid, start time) before its output, while it runs:
    what the sidecar journals to kill it after a crash."""
    seen: list[tuple[ProcessGroup, bool]] = []

    def spawned(group: ProcessGroup) -> None:
        seen.append((group, process_groups.alive(group)))
        (workdir / "go").touch()  # the command waits for this: it cannot have ended before the check

    executor = ShellExecutor(workdir, on_spawn=spawned)
    command = "echo $$; while [ ! -e go ]; do sleep 0.01; done"
    task = make_task("sidecar", metadata={"shell_command": command, "shell": True}, task_id="t-9", generation=4)
    outputs, outcome = await run(executor, task)
    assert outcome.ok
    [(group, running)] = seen
    assert running and (group.task_id, group.generation, group.pgid) == ("t-9", 4, int(outputs[0].text))
    assert group.start_time >= 0 and not process_groups.alive(group)  # and reaped with the run


async def test_timeout_kills_the_process_group(make_task: Any, workdir: Path, pid_alive: Any,
                                               eventually: Any) -> None:
    task = shell_task(make_task, "echo $$; sleep 30 & echo $!; wait", shell=True, timeout_ms=300)
    outputs, outcome = await run(ShellExecutor(workdir), task)
    leader, child = (int(o.text) for o in outputs if o.kind == "stdout")
    assert outcome.error == "timed out after 300 ms: process group killed"
    assert outcome.retryable is True
    with pytest.raises(ProcessLookupError):
        os.kill(leader, 0)
    assert await eventually(lambda: not pid_alive(child))


async def test_cancellation_kills_the_process_group(make_task: Any, workdir: Path, pid_alive: Any,
                                                    eventually: Any) -> None:
    task = shell_task(make_task, "echo $$; sleep 30 & echo $!; wait", shell=True)
    pids: list[int] = []
    two_pids = asyncio.Event()

    async def consume() -> None:
        async for step in ShellExecutor(workdir).run(task):
            if isinstance(step, Output) and step.kind == "stdout":
                pids.append(int(step.text))
                if len(pids) == 2:
                    two_pids.set()

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(two_pids.wait(), 10)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    leader, child = pids
    with pytest.raises(ProcessLookupError):
        os.kill(leader, 0)
    assert await eventually(lambda: not pid_alive(child))


async def test_cancelling_a_chatty_command_stops_it(make_task: Any, workdir: Path) -> None:
    """A cancel that lands while output lines are queued still stops the command (it was swallowed)."""
    for attempt in range(5):
        finished = workdir / f"finished-{attempt}"
        task = shell_task(make_task, f"for i in $(seq 1 100000); do echo line $i; done; sleep 2; touch {finished}",
                          shell=True)
        lines = 0

        async def consume() -> None:
            nonlocal lines
            async for step in ShellExecutor(workdir).run(task):
                lines += 1
                await asyncio.sleep(0)

        consumer = asyncio.create_task(consume())
        while lines < 100:
            await asyncio.sleep(0.01)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        assert not finished.exists()


async def test_sigterm_ignored_gets_sigkill(make_task: Any, workdir: Path, pid_alive: Any,
                                            eventually: Any) -> None:
    task = shell_task(make_task, "trap '' TERM; echo $$; sleep 30 & echo $!; wait", shell=True, timeout_ms=300)
    outputs, outcome = await run(ShellExecutor(workdir, kill_grace_s=0.2), task)
    leader, child = (int(o.text) for o in outputs if o.kind == "stdout")
    assert outcome.error is not None and "timed out" in outcome.error
    assert await eventually(lambda: not pid_alive(leader) and not pid_alive(child))


async def test_long_lines_are_split_and_last_line_kept(make_task: Any, workdir: Path) -> None:
    code = "import sys; sys.stdout.write('x' * 25 + '\\nend')"
    outputs, outcome = await run(ShellExecutor(workdir, max_line_chars=10), shell_task(make_task, [PY, "-c", code]))
    assert [o.text for o in outputs] == ["x" * 10, "x" * 10, "x" * 5, "end"]
    assert outcome.output == "x" * 25 + "\nend"


async def test_invalid_utf8_is_replaced(make_task: Any, workdir: Path) -> None:
    code = "import sys; sys.stdout.buffer.write(b'caf\\xc3\\xa9 \\xff\\n')"
    outputs, _ = await run(ShellExecutor(workdir), shell_task(make_task, [PY, "-c", code]))
    assert [o.text for o in outputs] == ["café \ufffd"]


async def test_secrets_are_not_passed_to_commands(make_task: Any, workdir: Path) -> None:
    env = {"PATH": os.environ["PATH"], "ANTHROPIC_API_KEY": "sk-secret", "AGENTCOM_TOKEN": "tok", "KEEP": "yes"}
    code = "import os; print(sorted(k for k in os.environ if k in ('ANTHROPIC_API_KEY', 'AGENTCOM_TOKEN', 'KEEP')))"
    _, outcome = await run(ShellExecutor(workdir, env=env), shell_task(make_task, [PY, "-c", code]))
    assert outcome.output == "['KEEP']\n"
