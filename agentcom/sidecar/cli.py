"""``agentcom sidecar``: run one sidecar until SIGTERM/SIGINT.

The console script (``agentcom.cli``) builds the parser and calls ``add_arguments`` and
``main``; this module only owns the sidecar's flags. Problems a user can fix (missing or bad
arguments, an unreachable hub, a refused token, a busy state directory) end with one line
on stderr and a non-zero exit, never a traceback.

Exit codes: 0 stopped by a signal, 1 hub unreachable / other error, 2 bad arguments,
3 the hub refused the credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from agentcom.errors import AgentComError, HubUnavailable
from agentcom.sidecar.journal import JournalError
from agentcom.sidecar.connection import Backoff, sidecar_url
from agentcom.sidecar.runtime import Sidecar, SidecarRefused

PROG = "agentcom sidecar"


class UsageError(Exception):
    """An argument the user has to fix."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``agentcom sidecar`` flags (environment variables fill the ones left out)."""
    parser.add_argument("--hub", metavar="URL", help="hub base URL, e.g. http://127.0.0.1:8765 ($AGENTCOM_HUB)")
    parser.add_argument("--agent-id", metavar="ID", help="this sidecar's agent id ($AGENTCOM_AGENT_ID)")
    parser.add_argument("--token", metavar="TOKEN", help="token from `agentcom token create` ($AGENTCOM_TOKEN, which keeps it out of the process list)")
    parser.add_argument("--capability", metavar="C", action="append", default=[], dest="capabilities",
                        help="a capability this sidecar offers (repeatable)")
    parser.add_argument("--ollama-url", metavar="URL", help="Ollama server this sidecar runs models on")
    parser.add_argument("--ollama-model", metavar="MODEL", help="Ollama model for tasks whose routing names none")
    parser.add_argument("--anthropic-base-url", metavar="URL", help="Anthropic API base URL (default: the real API)")
    parser.add_argument("--openai-url", metavar="URL",
                        help="OpenAI-compatible server (llama.cpp, vLLM...) for openai tasks whose routing names no endpoint")
    parser.add_argument("--local-model", metavar="PATH|auto",
                        help="GGUF model for the embedded llama.cpp executor ('auto': the packaged SmolLM2)")
    parser.add_argument("--local-threads", metavar="N", type=int,
                        help="CPU threads the embedded model uses (default: llama.cpp's, half the cores)")
    parser.add_argument("--workdir", metavar="DIR", help="directory tasks run in (default: the current one)")
    parser.add_argument("--state-dir", metavar="DIR",
                        help="where the task journal lives (default: ~/.agentcom/sidecars/AGENT_ID)")
    parser.add_argument("--concurrency", metavar="N", type=int, default=1, help="tasks run at once (default 1)")
    parser.add_argument("--name", metavar="NAME", help="display name on the dashboard")
    parser.add_argument("--price-table", metavar="FILE",
                        help="prices file this sidecar prices its runs with (default: the shipped table; the hub's "
                             "price_table is not used here: give the same file to record the hub's prices)")
    parser.add_argument("--reference-model", metavar="MODEL",
                        help="cloud model that prices the 'equivalent Claude cost' of local runs (default: the hub's "
                             "reference_model, else claude-sonnet-4-5); given, it wins over the hub's")
    parser.add_argument("--batch-interval-ms", metavar="MS", type=int,
                        help="token batching window in ms (default: the hub's batch_interval_ms, else 100); "
                             "given, it wins over the hub's")
    parser.add_argument("--max-events-per-second", metavar="N", type=float, default=2000.0,
                        help="progress frames a second at most; beyond it output lines are sent in batches (default 2000)")
    parser.add_argument("--connect-timeout", metavar="SECONDS", type=float, default=10.0,
                        help="give up when the hub cannot be reached at start for this long (default 10)")
    parser.add_argument("--reconnect-max", metavar="SECONDS", type=float, default=30.0,
                        help="longest wait between reconnection attempts (default 30)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log connection and task events")


def main(args: argparse.Namespace) -> int:
    """Run the sidecar described by ``args``; returns the process exit code."""
    try:
        sidecar = build_sidecar(args)
    except UsageError as exc:
        return _fail(str(exc), 2)
    except JournalError as exc:
        return _fail(str(exc), 1)
    _configure_logging(getattr(args, "verbose", False))
    try:
        asyncio.run(_serve(sidecar))
    except SidecarRefused as exc:
        return _fail(str(exc), 3)
    except (HubUnavailable, AgentComError) as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return 130
    return 0


def build_sidecar(args: argparse.Namespace) -> Sidecar:
    """A Sidecar from parsed flags plus the AGENTCOM_* / ANTHROPIC_API_KEY environment."""
    env = os.environ
    hub = _required(args.hub, "--hub", "AGENTCOM_HUB")
    agent_id = _required(args.agent_id, "--agent-id", "AGENTCOM_AGENT_ID")
    token = _required(args.token, "--token", "AGENTCOM_TOKEN")
    try:
        sidecar_url(hub)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not 1 <= args.concurrency <= 64:
        raise UsageError(f"--concurrency must be between 1 and 64, got {args.concurrency}")
    if args.max_events_per_second <= 0:
        raise UsageError(f"--max-events-per-second must be positive, got {args.max_events_per_second}")
    if args.batch_interval_ms is not None and args.batch_interval_ms < 1:
        raise UsageError(f"--batch-interval-ms must be positive, got {args.batch_interval_ms}")
    workdir = Path(args.workdir or os.getcwd()).expanduser()
    if not workdir.is_dir():
        raise UsageError(f"--workdir {workdir} is not a directory")
    state_dir = Path(args.state_dir).expanduser() if args.state_dir else Path.home() / ".agentcom" / "sidecars" / agent_id
    options: dict[str, Any] = {}
    if args.ollama_model:
        options["ollama_model"] = args.ollama_model
    if args.anthropic_base_url:
        options["anthropic_base_url"] = args.anthropic_base_url
    if env.get("ANTHROPIC_API_KEY"):
        options["anthropic_api_key"] = env["ANTHROPIC_API_KEY"]
    if args.price_table:
        options["price_table"] = args.price_table
    if args.reference_model:  # in the options only when given: the sidecar then ignores the hub's
        from agentcom.errors import PricingError
        from agentcom.pricing import PriceTable

        try:
            PriceTable.load(args.price_table).check_reference(args.reference_model)
        except PricingError as exc:
            raise UsageError(str(exc)) from None
        options["reference_model"] = args.reference_model
    if args.openai_url:
        from agentcom.errors import ConfigError
        from agentcom.executors.openai_compat import resolve_base_url

        try:
            resolve_base_url(args.openai_url)
        except ConfigError as exc:
            raise UsageError(f"--openai-url: {exc}") from None
        options["openai_url"] = args.openai_url
    models: list[str] = []
    if args.local_model:
        options["local_model"] = args.local_model
    if args.local_threads is not None:
        if not args.local_model:
            raise UsageError("--local-threads needs --local-model")
        if args.local_threads < 1:
            raise UsageError(f"--local-threads must be a positive integer, got {args.local_threads}")
        options["local_threads"] = args.local_threads
    return Sidecar(
        hub, agent_id, token,
        capabilities=args.capabilities, ollama_url=args.ollama_url, workdir=workdir, state_dir=state_dir,
        concurrency=args.concurrency, name=args.name, models=models, batch_interval_ms=args.batch_interval_ms,
        connect_timeout_s=args.connect_timeout, max_events_per_s=args.max_events_per_second,
        backoff=Backoff(cap_s=max(0.1, args.reconnect_max)),
        dispatcher_options=options,
    )


def _required(value: str | None, flag: str, var: str) -> str:
    value = value or os.environ.get(var)
    if not value:
        raise UsageError(f"{flag} is required (or set {var})")
    return value


async def _serve(sidecar: Sidecar) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, sidecar.stop)
    try:
        await sidecar.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _configure_logging(verbose: bool) -> None:
    root = logging.getLogger("agentcom")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(logging.INFO if verbose else logging.WARNING)


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def run_standalone(argv: list[str] | None = None) -> int:
    """``python -m agentcom.sidecar``: the same command without the main CLI."""
    parser = argparse.ArgumentParser(prog=PROG, description="Run one AgentCom sidecar.")
    add_arguments(parser)
    return main(parser.parse_args(argv))
