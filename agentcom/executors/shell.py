"""Shell executor (target ``sidecar``): runs ``metadata["shell_command"]`` in the workdir.

The command is split with ``shlex`` and executed directly; a shell is used only when
``metadata["shell"]`` is true. stdout and stderr are streamed line by line. The command
runs in its own session (process group), so a timeout (``metadata["timeout_ms"]``,
default 60 s) or a cancellation stops everything it started: SIGTERM to the group, then
SIGKILL after a grace period. ``on_spawn`` hears of each group as it starts (the sidecar
journals it, so a group that outlives a sidecar crash is killed when the sidecar starts again:
see ``process_groups``).

The child's environment is the sidecar's minus its secrets (API keys, AgentCom
tokens), plus ``AGENTCOM_TASK_ID`` and ``AGENTCOM_GENERATION``. ``model_used`` is
``"shell"``: no model ran, and the run is free.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import shlex
import signal
from collections import deque
from pathlib import Path
from typing import AsyncGenerator, Callable, Iterable, Mapping

from agentcom.executors import process_groups
from agentcom.executors.base import Outcome, Output, OutputKind, Step
from agentcom.executors.process_groups import ProcessGroup
from agentcom.protocol.messages import TaskAssign

__all__ = ["ShellExecutor", "SCRUBBED_ENV", "MODEL_NAME"]

MODEL_NAME = "shell"
SCRUBBED_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "OPENAI_API_KEY", "AGENTCOM_TOKEN",
                "AGENTCOM_ADMIN_TOKEN")
_READ_SIZE = 65_536


class _Tail:
    """The last ``limit`` characters of a stream (bounded memory for chatty commands)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._parts: deque[str] = deque()
        self._size = 0

    def add(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        while self._size - len(self._parts[0]) >= self.limit:
            self._size -= len(self._parts.popleft())

    def text(self) -> str:
        return "".join(self._parts)[-self.limit:]


class _Failure(Exception):
    """A task that cannot be started; becomes a failed Outcome (``retryable``: another sidecar could)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ShellExecutor:
    """Runs shell tasks. ``kill_grace_s`` is how long SIGTERM gets before SIGKILL."""

    target_type = "sidecar"

    def __init__(self, workdir: str | Path, *, default_timeout_ms: int = 60_000, kill_grace_s: float = 2.0,
                 max_output_chars: int = 524_288, max_line_chars: int = 65_536,
                 scrub_env: Iterable[str] = SCRUBBED_ENV, env: Mapping[str, str] | None = None,
                 on_spawn: Callable[[ProcessGroup], None] | None = None) -> None:
        self.workdir = Path(workdir)
        self.default_timeout_ms = default_timeout_ms
        self.kill_grace_s = kill_grace_s
        self.max_output_chars = max_output_chars
        self.max_line_chars = max_line_chars
        self._scrub = frozenset(scrub_env)
        self._env = dict(env) if env is not None else None
        self.on_spawn = on_spawn

    def refusal(self, task: TaskAssign) -> str | None:
        """Why this sidecar cannot run ``task`` whatever the task says (its workdir is gone), or None."""
        if not self.workdir.is_dir():
            return f"workdir {str(self.workdir)!r} does not exist or is not a directory"
        return None

    async def run(self, task: TaskAssign) -> AsyncGenerator[Step, None]:
        try:
            argv, timeout_ms = self._parse(task)
            proc = await self._spawn(argv, task)
        except _Failure as exc:
            yield Outcome(output="", model_used=MODEL_NAME, error=str(exc), retryable=exc.retryable)
            return
        stdout, stderr = _Tail(self.max_output_chars), _Tail(4_000)
        queue: asyncio.Queue[Output | None] = asyncio.Queue()
        assert proc.stdout is not None and proc.stderr is not None
        pumps = [asyncio.create_task(self._pump(proc.stdout, "stdout", stdout, queue)),
                 asyncio.create_task(self._pump(proc.stderr, "stderr", stderr, queue))]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        try:
            if self.on_spawn is not None:  # inside the try: should recording fail, the group is still killed
                group = process_groups.record(proc.pid, task.task_id, task.generation)
                if group is not None:
                    self.on_spawn(group)
            open_streams = len(pumps)
            timed_out = False
            # asyncio.timeout_at, not wait_for: on Python 3.11 wait_for swallows a cancel that arrives
            # as a line is queued, and a chatty command then ran on to its end after task_cancelled
            while open_streams and not timed_out:
                if loop.time() >= deadline:
                    timed_out = True
                    break
                try:
                    async with asyncio.timeout_at(deadline):
                        item = await queue.get()
                except TimeoutError:
                    timed_out = True
                    break
                if item is None:
                    open_streams -= 1
                else:
                    yield item
            if not timed_out:
                try:
                    async with asyncio.timeout_at(deadline):
                        await proc.wait()
                except TimeoutError:
                    timed_out = True
            if timed_out:
                await self._terminate(proc)
                yield Outcome(output=stdout.text(), model_used=MODEL_NAME, retryable=True,
                              error=f"timed out after {timeout_ms} ms: process group killed")
                return
            yield self._outcome(proc.returncode, stdout, stderr)
        finally:
            if proc.returncode is None:  # cancelled, or the consumer stopped early
                await self._terminate(proc)
            else:
                _killpg(proc.pid, signal.SIGKILL)  # stragglers left behind in the group
            for pump in pumps:
                pump.cancel()

    # ------------------------------------------------------------------ pieces

    def _parse(self, task: TaskAssign) -> tuple[list[str], int]:
        meta = task.metadata
        command = meta.get("shell_command")
        use_shell = meta.get("shell") is True
        if isinstance(command, list) and command and all(isinstance(a, str) for a in command):
            argv = ["/bin/sh", "-c", shlex.join(command)] if use_shell else list(command)
        elif isinstance(command, str) and command.strip():
            if use_shell:
                argv = ["/bin/sh", "-c", command]
            else:
                try:
                    argv = shlex.split(command)
                except ValueError as exc:
                    raise _Failure(f"cannot parse shell_command {command!r}: {exc}") from None
        else:
            raise _Failure("task has no metadata.shell_command (a non-empty string or list of "
                           f"strings) for the shell executor, got {command!r}")
        timeout_ms = meta.get("timeout_ms", self.default_timeout_ms)
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)) or timeout_ms <= 0:
            raise _Failure(f"metadata.timeout_ms must be a positive number of milliseconds, got {timeout_ms!r}")
        return argv, int(timeout_ms)

    async def _spawn(self, argv: list[str], task: TaskAssign) -> asyncio.subprocess.Process:
        refusal = self.refusal(task)
        if refusal is not None:
            raise _Failure(refusal, retryable=True)  # this sidecar's set-up, not the task: another may run it
        base = self._env if self._env is not None else os.environ
        env = {k: v for k, v in base.items() if k not in self._scrub}
        env.update(AGENTCOM_TASK_ID=task.task_id, AGENTCOM_GENERATION=str(task.generation))
        try:
            return await asyncio.create_subprocess_exec(
                *argv, cwd=self.workdir, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except FileNotFoundError:
            raise _Failure(f"command not found: {argv[0]!r}") from None
        except PermissionError:
            raise _Failure(f"permission denied running {argv[0]!r}") from None
        except OSError as exc:
            raise _Failure(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None

    async def _pump(self, stream: asyncio.StreamReader, kind: OutputKind, tail: _Tail,
                    queue: asyncio.Queue[Output | None]) -> None:
        """Forward a pipe as line Outputs; a line longer than ``max_line_chars`` is split."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        limit = self.max_line_chars
        pending = ""
        try:
            while True:
                data = await stream.read(_READ_SIZE)
                text = decoder.decode(data, final=not data)
                tail.add(text)
                pending += text
                *lines, pending = pending.split("\n")
                for line in lines:
                    line = line.removesuffix("\r")
                    for start in range(0, max(len(line), 1), limit):
                        queue.put_nowait(Output(kind=kind, text=line[start:start + limit]))
                while len(pending) >= limit:
                    queue.put_nowait(Output(kind=kind, text=pending[:limit]))
                    pending = pending[limit:]
                if not data:
                    break
            if pending:
                queue.put_nowait(Output(kind=kind, text=pending))
        finally:
            queue.put_nowait(None)

    def _outcome(self, code: int | None, stdout: _Tail, stderr: _Tail) -> Outcome:
        if code == 0:
            return Outcome(output=stdout.text(), model_used=MODEL_NAME)
        lines = stderr.text().rstrip().splitlines()[-20:]
        detail = "\n".join(lines)[-2_000:]
        if code is not None and code < 0:
            try:
                what = f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                what = f"killed by signal {-code}"
        else:
            what = f"exit code {code}"
        return Outcome(output=stdout.text(), model_used=MODEL_NAME, retryable=False,
                       error=f"{what}: {detail}" if detail else what)

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM the whole group, SIGKILL it after the grace period, reap the leader."""
        _killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.kill_grace_s)
        except TimeoutError:
            pass
        finally:
            _killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


def _killpg(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
