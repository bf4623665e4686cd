"""``agentcom demo``: the whole system on one machine, with nothing to start by hand.

It starts a hub in this process (loopback, SQLite in a temporary directory unless
``--db``), N sidecars as real ``python -m agentcom sidecar`` processes, and submits a
mixed workload: real shell commands (trivial tier), standard-tier and complex-tier LLM
prompts. It shows the dashboard URL, a live line per task and a bar for the whole run, and
ends with a cost summary per model.

Backends are chosen honestly (``BACKEND_ORDER``, also in ``--help``). Standard tier: a
reachable Ollama server (``OLLAMA_HOST``, default 127.0.0.1:11434) with a chat model, else
the embedded SmolLM2 model when llama-cpp-python is installed (a real model, target
``local``), else the Ollama stand-in. Complex tier: the Anthropic API when ANTHROPIC_API_KEY
is set (real money: each task is capped at a few hundred tokens), else the Anthropic
stand-in. Stand-in models are named ``simulated-*`` and the summary says which runs were
simulated; a simulated Claude run counts no savings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, TextIO

from agentcom.errors import AgentComError

PROG = "agentcom demo"
FINAL = ("completed", "failed", "dead_letter", "cancelled")
CLAUDE_MODEL = "claude-sonnet-4-5"
CLOUD_MAX_TOKENS = 400
BACKEND_ORDER = f"""\
backends, first available wins:
  trivial tier   real shell commands, in a scratch directory
  standard tier  1. a reachable Ollama server ($OLLAMA_HOST, default 127.0.0.1:11434),
                    with its smallest chat model (embedding-only models are skipped)
                 2. the embedded SmolLM2-135M model (llama-cpp-python, the 'local' extra)
                 3. the Ollama stand-in, model simulated-llama3.2 (simulated)
  complex tier   1. the Anthropic API ({CLAUDE_MODEL}) when ANTHROPIC_API_KEY is set
                    (real spend, at most {CLOUD_MAX_TOKENS} output tokens a task)
                 2. the Anthropic stand-in, model simulated-{CLAUDE_MODEL} (simulated)
--simulate skips the real Ollama server and the Anthropic API; --no-local skips the
embedded model. Simulated runs cost nothing and are labelled in the cost summary."""


# --------------------------------------------------------------------------- backends


@dataclass
class Backends:
    """What serves each tier, and which parts are simulated."""

    standard_target: str
    complex_target: str = f"claude:{CLAUDE_MODEL}"
    ollama_url: str | None = None
    anthropic_base_url: str | None = None
    anthropic_api_key: str = ""
    local_model: bool = False
    notes: list[str] = field(default_factory=list)
    simulated: list[str] = field(default_factory=list)
    standins: list[Any] = field(default_factory=list)

    async def close(self) -> None:
        for standin in self.standins:
            await standin.stop()


async def choose_backends(*, simulate: bool, use_local: bool) -> Backends:
    """Real backends where they are available, stand-ins (and the word "simulated") elsewhere,
    in the order of ``BACKEND_ORDER``."""
    from agentcom.standin import AnthropicStandin, OllamaStandin

    backends = Backends(standard_target="")
    why_not_ollama = "--simulate"
    if not simulate:
        url = _ollama_url()
        models = await _ollama_models(url)
        model = _chat_model(models or [])
        why_not_ollama = "no server reachable" if models is None else "no chat model on the server"
        if model:
            backends.ollama_url, backends.standard_target = url, f"ollama:{model}"
            backends.notes.append(f"standard tier: Ollama at {url}, model {model}")
        elif models is not None:
            backends.notes.append(f"Ollama at {url} has no chat model (pull one, e.g. `ollama pull llama3.2`)")
    if not backends.standard_target and use_local and _embedded_model_available():
        backends.standard_target, backends.local_model = "local", True
        backends.notes.append("standard tier: SmolLM2-135M embedded with llama.cpp (a real model, on this CPU)")
    if not backends.standard_target:
        ollama = await OllamaStandin(chunk_delay=0.02).start()
        backends.standins.append(ollama)
        backends.ollama_url, backends.standard_target = ollama.url, "ollama:simulated-llama3.2"
        backends.simulated.append(f"Ollama ({why_not_ollama})")
        backends.notes.append("standard tier: Ollama stand-in, model simulated-llama3.2 (simulated)")
    key = os.environ.get("ANTHROPIC_API_KEY", "")
    if key and not simulate:
        backends.anthropic_api_key = key
        backends.notes.append(f"complex tier: the Anthropic API, {CLAUDE_MODEL} (real spend, "
                              f"at most {CLOUD_MAX_TOKENS} output tokens a task)")
    else:
        standin = await AnthropicStandin(chunk_delay=0.02).start()
        backends.standins.append(standin)
        backends.anthropic_base_url, backends.anthropic_api_key = standin.url, "sk-demo-standin"
        backends.simulated.append("Anthropic API (no ANTHROPIC_API_KEY)" if not key else "Anthropic API (--simulate)")
        backends.notes.append(f"complex tier: Anthropic stand-in, model simulated-{CLAUDE_MODEL} (simulated)")
    backends.notes.insert(0, "trivial tier: real shell commands in a scratch directory")
    return backends


def _embedded_model_available() -> bool:
    """llama-cpp-python and the packaged SmolLM2 model are both installed."""
    from agentcom.executors.local_model import find_local_model, llama_available

    if not llama_available():
        return False
    try:
        find_local_model("auto")
    except AgentComError:
        return False
    return True


def _ollama_url() -> str:
    host = os.environ.get("OLLAMA_HOST", "127.0.0.1:11434").strip().rstrip("/")
    return host if "://" in host else f"http://{host}"


async def _ollama_models(url: str) -> list[Any] | None:
    """The models of the Ollama server at ``url`` (official client, ``/api/tags``); None when unreachable."""
    import ollama

    try:
        client = ollama.AsyncClient(host=url, timeout=2.0)  # a malformed OLLAMA_HOST fails here
    except Exception:  # noqa: BLE001  any failure means "no Ollama here"
        return None
    try:
        return list((await client.list()).models)
    except Exception:  # noqa: BLE001  any failure means "no Ollama here"
        return None
    finally:
        await client.close()  # type: ignore[no-untyped-call]


def _is_embedding_model(model: Any) -> bool:
    """An embedding-only model (it cannot chat): "embed" in its name, or a BERT family."""
    name = str(getattr(model, "model", None) or "").lower()
    details = getattr(model, "details", None)
    families = [str(f).lower() for f in [getattr(details, "family", None), *(getattr(details, "families", None) or [])]
                if f]
    return "embed" in name or any("bert" in family for family in families)


def _chat_model(models: Sequence[Any]) -> str | None:
    """The smallest chat-capable model of an Ollama ``list()`` (the demo wants speed), or None."""
    chat = [m for m in models if getattr(m, "model", None) and not _is_embedding_model(m)]
    if not chat:
        return None
    best = min(chat, key=lambda m: (m.size if isinstance(m.size, int) and m.size > 0 else float("inf"),
                                    len(m.model), m.model))
    return str(best.model)


# --------------------------------------------------------------------------- workload


def workload(count: int, workdir: Path) -> list[dict[str, Any]]:
    """``count`` task submissions cycling through shell, standard and complex work."""
    py = sys.executable
    shell = [
        ("Report the Python version and machine", [py, "-c", "import platform; print('Python', "
                                                   "platform.python_version(), 'on', platform.machine())"]),
        ("List the workspace", ["ls", "-la", str(workdir)]),
        ("Count primes below 30000, showing progress",
         [py, "-c", "import time\nfound = []\nfor n in range(2, 30000):\n"
                    "    if all(n % p for p in found if p * p <= n): found.append(n)\n"
                    "    if n % 5000 == 0: print(f'{n}: {len(found)} primes so far', flush=True); time.sleep(0.1)\n"
                    "print(len(found), 'primes below 30000')"]),
    ]
    if shutil.which("git"):
        shell.append(("Check the git version", ["git", "--version"]))
    standard = [
        "Explain what a binary search does and when it beats a linear scan",
        "Write a docstring for a function that merges two sorted lists",
        "Suggest three unit tests for a date parser",
        "Summarise the trade-offs of SQLite's WAL mode",
    ]
    complex_ = [
        "Refactor the billing module into separate services and plan the data migration",
        "Design a security review of the token store and its rotation",
        "Rewrite the scheduler so that agents share work fairly, with a migration plan",
    ]
    tasks: list[dict[str, Any]] = []
    for i in range(count):
        kind, n = i % 3, i // 3
        if kind == 0:
            description, argv = shell[n % len(shell)]
            tasks.append({"description": description, "complexity_tier": "trivial",
                          "metadata": {"shell_command": shlex.join(argv), "timeout_ms": 60_000}})
        elif kind == 1:
            tasks.append({"description": standard[n % len(standard)], "complexity_tier": "standard",
                          "metadata": {"max_tokens": 96}})
        else:
            tasks.append({"description": complex_[n % len(complex_)], "complexity_tier": "complex",
                          "metadata": {"max_tokens": CLOUD_MAX_TOKENS}})
    return tasks


# --------------------------------------------------------------------------- display


@dataclass
class _Row:
    task_id: str
    description: str
    tier: str
    status: str = "queued"
    agent: str | None = None
    latest: str = ""
    tokens: int | None = None


class Display:
    """Prints a line per task change and a bar for the run; on a terminal also a live line per running task."""

    def __init__(self, out: TextIO, total: int) -> None:
        self.out = out
        self.total = total
        self.rows: dict[str, _Row] = {}
        self.live = out.isatty()
        self._footer = 0
        self._dirty = False

    def add(self, task_id: str, description: str, tier: str) -> None:
        self.rows[task_id] = _Row(task_id, description, tier)

    def on_message(self, topic: str, message: dict[str, Any]) -> None:
        """A pub/sub listener: must stay cheap (it runs on the hub's loop)."""
        if topic == "execution":
            row = self.rows.get(message.get("task_id", ""))
            if row is not None and message.get("text"):
                text = (row.latest + message["text"]) if message.get("event_type") == "token" else message["text"]
                row.latest = " ".join(text.split())[-120:]
                if message.get("tokens_so_far") is not None:
                    row.tokens = message["tokens_so_far"]
                self._dirty = True
            return
        task = message.get("task") if message.get("kind") == "task" else None
        row = self.rows.get(task["task_id"]) if task else None
        if row is None or task is None or task["status"] == row.status:
            return
        row.status, row.agent = task["status"], task.get("assigned_to") or row.agent
        if row.status in ("working",) + FINAL:
            self._line(self._describe(row, task))
            if row.status in FINAL and not self.live:  # a terminal shows the bar in the live lines
                self._line(self.bar())
        self._dirty = True

    def _describe(self, row: _Row, task: dict[str, Any]) -> str:
        label = {"working": "run", "completed": "ok", "failed": "FAIL", "dead_letter": "DEAD",
                 "cancelled": "cancel"}[row.status]
        head = f"  [{label:>6}] {_short(row.task_id)}  {row.tier:<8} {row.agent or '-':<8}"
        if row.status == "working":
            return f"{head} {row.description}"
        model = task.get("model_used") or "-"
        cost = task.get("cost_usd")
        money = f"${cost:.6f}" if isinstance(cost, (int, float)) else "unpriced"
        return f"{head} {model[:34]:<34} {money:>10}  {row.description}"

    def bar(self, width: int = 30) -> str:
        statuses = Counter(r.status for r in self.rows.values())
        done = sum(statuses[s] for s in FINAL)
        filled = int(width * done / self.total) if self.total else width
        return (f"  [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} done, "
                f"{statuses['working'] + statuses['assigned']} running, {statuses['queued']} queued")

    def refresh(self) -> None:
        """Redraw the live lines (terminal only), at most as often as it is called."""
        if not self.live or not self._dirty:
            return
        self._dirty = False
        self._clear_footer()
        running = [r for r in self.rows.values() if r.status in ("assigned", "working")]
        width = max(40, shutil.get_terminal_size().columns - 1)  # a wrapped line would break the redraw
        lines = [f"    {_short(r.task_id)} {r.agent or '-':<8} {r.latest[-90:]}" for r in running]
        lines.append(self.bar())
        self.out.write("\n".join(line[:width] for line in lines) + "\n")
        self.out.flush()
        self._footer = len(lines)

    def _line(self, text: str) -> None:
        self._clear_footer()
        self.out.write(text + "\n")
        self.out.flush()

    def _clear_footer(self) -> None:
        if self.live and self._footer:
            self.out.write(f"\x1b[{self._footer}F\x1b[J")
            self._footer = 0


def _short(task_id: str) -> str:
    """``task-`` and the id's last 8 characters (its random part; the leading time part is shared by a whole run)."""
    return f"{task_id[:5]}{task_id[-8:]}" if len(task_id) > 13 else task_id


# --------------------------------------------------------------------------- summary


def summary(rows: list[dict[str, Any]], backends: Backends, out: TextIO) -> None:
    """The cost table: per model runs, tokens, cost, Claude-equivalent cost and savings; totals."""
    by_model: dict[str, dict[str, Any]] = {}
    for row in rows:
        name = row.get("model_used") or "-"
        agg = by_model.setdefault(name, {"runs": 0, "failed": 0, "in": 0, "out": 0, "cost": 0.0, "eq": 0.0,
                                         "saved": 0.0, "unpriced": 0, "has_eq": False})
        agg["runs"] += 1
        agg["failed"] += row.get("status") != "success"
        agg["in"] += row.get("tokens_in") or 0
        agg["out"] += row.get("tokens_out") or 0
        cost, eq = row.get("estimated_cost_usd"), row.get("equivalent_claude_cost_usd")
        if cost is None:
            agg["unpriced"] += 1
        else:
            agg["cost"] += cost
        if eq is not None:
            agg["eq"] += eq
            agg["has_eq"] = True
            if cost is not None and not _simulated_cloud(name):
                agg["saved"] += eq - cost
    header = f"  {'model':<42} {'runs':>4} {'tokens in':>10} {'tokens out':>10} {'cost':>11} {'Claude equiv.':>13} {'savings':>11}"
    out.write("\nCost summary" + (" (partly simulated)" if backends.simulated else "") + "\n")
    out.write(header + "\n  " + "-" * (len(header) - 2) + "\n")
    total = {"runs": 0, "in": 0, "out": 0, "cost": 0.0, "eq": 0.0, "saved": 0.0}
    for name, agg in sorted(by_model.items()):
        label = name + (" (simulated)" if name.startswith("simulated-") else "")
        cost = f"${agg['cost']:.6f}" + ("+?" if agg["unpriced"] else "")
        eq = f"${agg['eq']:.6f}" if agg["has_eq"] else "-"
        saved = "n/a (sim.)" if _simulated_cloud(name) else (f"${agg['saved']:.6f}" if agg["has_eq"] else "-")
        runs = f"{agg['runs']}" + (f" ({agg['failed']} failed)" if agg["failed"] else "")
        out.write(f"  {label[:42]:<42} {runs:>4} {agg['in']:>10} {agg['out']:>10} {cost:>11} {eq:>13} {saved:>11}\n")
        for key in ("runs", "in", "out", "cost", "eq", "saved"):
            total[key] += agg[key]
    out.write("  " + "-" * (len(header) - 2) + "\n")
    money = [f"${total[key]:.6f}" for key in ("cost", "eq", "saved")]
    out.write(f"  {'total':<42} {total['runs']:>4} {total['in']:>10} {total['out']:>10} {money[0]:>11} "
              f"{money[1]:>13} {money[2]:>11}\n")
    if backends.simulated:
        out.write(f"\n  simulated: {', '.join(backends.simulated)}. Stand-in servers answered those runs with\n"
                  "  'simulated-*' models: they cost nothing, 'Claude equiv.' is what the real model would charge,\n"
                  "  and a simulated Claude run counts no savings.\n")


def _simulated_cloud(model: str) -> bool:
    return model.startswith("simulated-claude")


# --------------------------------------------------------------------------- the run


class Sidecars:
    """The sidecar processes of the demo, with their logs."""

    def __init__(self, hub: Any, count: int, backends: Backends, root: Path, workdir: Path,
                 extra_args: Sequence[str] = ()) -> None:
        self.hub, self.count, self.backends, self.root, self.workdir = hub, count, backends, root, workdir
        self.extra_args = tuple(extra_args)  # more `agentcom sidecar` flags, e.g. ("--price-table", path)
        self.procs: list[tuple[str, asyncio.subprocess.Process, Path]] = []

    async def start(self) -> None:
        for i in range(1, self.count + 1):
            agent_id = f"demo-{i}"
            # secrets go through the environment, never the argument list other users can read in ps
            env = {**os.environ, "ANTHROPIC_API_KEY": self.backends.anthropic_api_key,
                   "AGENTCOM_TOKEN": self.hub.create_agent_token(agent_id)}
            args = [sys.executable, "-m", "agentcom", "sidecar", "--hub", self.hub.url, "--agent-id", agent_id,
                    "--workdir", str(self.workdir),
                    "--state-dir", str(self.root / "sidecars" / agent_id), "--name", f"demo sidecar {i}", "-v"]
            if self.backends.ollama_url:
                args += ["--ollama-url", self.backends.ollama_url]
            if self.backends.anthropic_base_url:
                args += ["--anthropic-base-url", self.backends.anthropic_base_url]
            if self.backends.local_model:
                args += ["--local-model", "auto"]
            args += self.extra_args
            log_path = self.root / f"{agent_id}.log"
            with open(log_path, "wb") as log:
                proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.DEVNULL, stdout=log,
                                                            stderr=log, env=env)
            self.procs.append((agent_id, proc, log_path))

    def all_dead(self) -> bool:
        return bool(self.procs) and all(proc.returncode is not None for _, proc, _ in self.procs)

    def last_words(self) -> str:
        words = []
        for agent_id, proc, log_path in self.procs:
            lines = log_path.read_text(errors="replace").strip().splitlines() if log_path.exists() else []
            words.append(f"{agent_id} (exit {proc.returncode}): {lines[-1] if lines else 'no output'}")
        return "; ".join(words)

    async def stop(self) -> None:
        for _, proc, _ in self.procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc, _ in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()


async def run_demo(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from agentcom.hub import Hub

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    scratch = Path(tempfile.mkdtemp(prefix="agentcom-demo-"))
    workdir = scratch / "workspace"
    workdir.mkdir()
    (workdir / "README.md").write_text("# demo workspace\n")
    db_path = Path(args.db).expanduser() if args.db else scratch / "hub.db"
    backends = await choose_backends(simulate=args.simulate, use_local=not args.no_local)
    hub = None
    sidecars = None
    try:
        hub = await Hub(db_path=str(db_path), port=args.port,
                        tier_targets={"trivial": "sidecar", "standard": backends.standard_target,
                                      "unknown": backends.standard_target,
                                      "complex": backends.complex_target}).start()
        out.write(f"{PROG}: hub at {hub.url} (database {db_path})\n")
        out.write(f"  dashboard: {hub.url}/agentcom/?token={hub.admin_token}\n")
        for note in backends.notes:
            out.write(f"  {note}\n")
        out.write(f"  starting {args.sidecars} sidecar process(es), submitting {args.tasks} task(s)\n")
        out.flush()
        sidecars = Sidecars(hub, args.sidecars, backends, scratch, workdir)
        await sidecars.start()

        display = Display(out, args.tasks)
        hub.core.pubsub.subscribe(display.on_message, ("tasks", "execution"))
        for body in workload(args.tasks, workdir):
            task = hub.submit_dict(body)
            display.add(task.task_id, body["description"], body["complexity_tier"])
        finished = await _wait(display, sidecars, stop, args.timeout)
        display.refresh()
        if not finished:
            reason = ("interrupted" if stop.is_set() else
                      f"all sidecars exited: {sidecars.last_words()}" if sidecars.all_dead() else
                      f"timed out after {args.timeout:.0f}s")
            out.write(f"{PROG}: {reason}\n")
        task_ids = set(display.rows)
        rows = [r for r in hub.core.store.executions() if r["task_id"] in task_ids]
        summary(rows, backends, out)
        states = Counter(r.status for r in display.rows.values())
        out.write("\n  tasks: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + "\n")
        out.flush()
        if args.serve and not stop.is_set():
            out.write(f"\n{PROG}: serving the dashboard at {hub.url}/agentcom/?token={hub.admin_token}"
                      " - press Ctrl-C to stop\n")
            out.flush()
            await stop.wait()
        if stop.is_set() and not finished:
            return 130
        return 0 if finished else 1
    finally:
        if sidecars is not None:
            await sidecars.stop()
        await backends.close()
        if hub is not None:
            await hub.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        shutil.rmtree(scratch, ignore_errors=True)


async def _wait(display: Display, sidecars: Sidecars, stop: asyncio.Event, timeout: float) -> bool:
    """Until every task is final (True), or interrupted / sidecars gone / timed out (False)."""
    deadline = time.monotonic() + timeout
    while True:
        display.refresh()
        if all(r.status in FINAL for r in display.rows.values()):
            return True
        if stop.is_set() or sidecars.all_dead() or time.monotonic() > deadline:
            return False
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Start a hub, local sidecar processes and a mixed workload (shell commands,\n"
                          "standard- and complex-tier LLM prompts); show each task's progress and end\n"
                          "with a cost summary.")
    parser.epilog = BACKEND_ORDER
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keeps the epilog's layout
    parser.add_argument("--sidecars", type=int, default=3, metavar="N", help="sidecar processes to start (default 3)")
    parser.add_argument("--tasks", type=int, default=9, metavar="N", help="tasks to submit (default 9)")
    parser.add_argument("--serve", action="store_true", help="keep the hub up after the summary, until Ctrl-C")
    parser.add_argument("--db", metavar="PATH", help="SQLite file to keep (default: a temporary one)")
    parser.add_argument("--port", type=int, default=0, help="hub port (default: any free port)")
    parser.add_argument("--simulate", action="store_true",
                        help="use the stand-in Ollama and Anthropic servers even when real ones are available")
    parser.add_argument("--no-local", action="store_true",
                        help="do not use the embedded llama.cpp model (without Ollama: the stand-in serves)")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                        help="give up when the workload is not done after this long (default 600)")


def main(args: argparse.Namespace) -> int:
    for name, low, high in (("sidecars", 1, 32), ("tasks", 1, 1000)):
        value = getattr(args, name)
        if not low <= value <= high:
            print(f"{PROG}: error: --{name} must be between {low} and {high}, got {value}", file=sys.stderr)
            return 2
    if not 0 <= args.port <= 65535:
        print(f"{PROG}: error: --port must be between 0 and 65535, got {args.port}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run_demo(args))
    except AgentComError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
