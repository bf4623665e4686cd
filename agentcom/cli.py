"""The ``agentcom`` command: hub, token, sidecar, submit, status, endpoints, demo.

Every failure a user can cause (bad argument, unreachable hub, bad token, bad config)
ends as one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence

from agentcom.config import AgentCom, default_db_path, parse_value
from agentcom.errors import AgentComError, ConfigError, HubUnavailable

DEFAULT_HUB = "http://127.0.0.1:8765"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _fail(message: str, code: int = 1) -> int:
    print(f"agentcom: error: {message}", file=sys.stderr)
    return code


# ------------------------------------------------------------------ hub


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    names = AgentCom.setting_names()
    for name in names:
        if name in ("db_path",):
            continue
        parser.add_argument(f"--{name.replace('_', '-')}", dest=f"setting_{name}", metavar="VALUE",
                            help=argparse.SUPPRESS if name not in ("host", "port") else None)


def _settings_from_args(args: argparse.Namespace) -> AgentCom:
    overrides: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key.startswith("setting_") and value is not None:
            name = key[len("setting_"):]
            overrides[name] = parse_value(name, value) if isinstance(value, str) else value
    if args.db:
        overrides["db_path"] = args.db
    return AgentCom.load(file=args.config, overrides=overrides)


def cmd_hub(args: argparse.Namespace) -> int:
    from agentcom.hub import Hub
    from agentcom.hub.service import admin_token_path

    settings = _settings_from_args(args)

    async def serve() -> None:
        hub = Hub(settings)
        try:
            await hub.start()
        except OSError as exc:
            await hub.stop()
            raise ConfigError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # before the URL is printed: whoever saw it may stop us
            loop.add_signal_handler(sig, stop.set)
        print(f"AgentCom hub {hub.version} listening on {hub.url}", flush=True)
        print(f"  dashboard: {hub.url}/agentcom/", flush=True)
        where = "$AGENTCOM_ADMIN_TOKEN" if settings.admin_token else str(admin_token_path(settings.db_path))
        print(f"  database:  {settings.db_path}\n  admin token in {where}", flush=True)
        await stop.wait()
        print("shutting down", flush=True)
        await hub.stop()

    asyncio.run(serve())
    return 0


# ------------------------------------------------------------------ tokens


def cmd_token(args: argparse.Namespace) -> int:
    from agentcom.store import tokens
    from agentcom.store.db import open_db

    conn = open_db(args.db or default_db_path())
    try:
        if args.token_command == "create":
            _check_agent_id(args.agent_id)
            print(tokens.create_token(conn, args.agent_id))
            print(f"token for {args.agent_id} (shown once; only its hash is stored)", file=sys.stderr)
        elif args.token_command == "list":
            for info in tokens.list_tokens(conn):
                state = "revoked" if info.revoked_at else "active"
                print(f"{info.agent_id}\t{state}")
        else:
            if not tokens.revoke_token(conn, args.agent_id):
                return _fail(f"no active token for agent {args.agent_id!r}")
            print(f"revoked {args.agent_id}")
    finally:
        conn.close()
    return 0


def _check_agent_id(agent_id: str) -> None:
    import msgspec

    from agentcom.protocol.messages import AgentId

    try:
        msgspec.convert(agent_id, AgentId)
    except msgspec.ValidationError:
        raise ConfigError(f"agent id {agent_id!r} must be 1-128 characters of letters, digits and . _ : @ -") from None


# ------------------------------------------------------------------ HTTP client commands


class AdminClient:
    """The CLI's small synchronous client of the hub's HTTP API."""

    def __init__(self, hub: str | None, token: str | None, db: str | None) -> None:
        self.base = (hub or os.environ.get("AGENTCOM_HUB") or DEFAULT_HUB).rstrip("/")
        if not self.base.startswith(("http://", "https://")):
            raise ConfigError(f"--hub must be an http(s) URL, got {self.base!r}")
        self.token = token or os.environ.get("AGENTCOM_ADMIN_TOKEN") or self._token_file(db)

    @staticmethod
    def _token_file(db: str | None) -> str | None:
        from agentcom.hub.service import admin_token_path

        path = admin_token_path(db or default_db_path())
        return path.read_text().strip() if path.exists() else None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("message", exc.reason)
            except (ValueError, AttributeError):
                detail = exc.reason
            if exc.code in (401, 403):
                raise HubUnavailable(f"hub refused the admin token ({exc.code}): {detail}") from None
            raise HubUnavailable(f"hub answered {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise HubUnavailable(f"cannot reach the hub at {self.base}: {reason}") from None


def cmd_submit(args: argparse.Namespace) -> int:
    client = AdminClient(args.hub, args.token, args.db)
    body: dict[str, Any] = {"description": args.description, "priority": args.priority}
    if args.tier:
        body["complexity_tier"] = args.tier
    metadata: dict[str, Any] = {}
    if args.shell_command:
        metadata["shell_command"] = args.shell_command
    if metadata:
        body["metadata"] = metadata
    if args.capability:
        body["needed_capabilities"] = args.capability
    answer = client.request("POST", "/agentcom/api/tasks", body)
    print(answer["task_id"])
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    client = AdminClient(args.hub, args.token, args.db)
    snap = client.request("GET", "/agentcom/api/snapshot")
    if args.json:
        print(json.dumps(snap, indent=2))
        return 0
    print(f"agents ({len(snap['agents'])}):")
    for agent in snap["agents"]:
        print(f"  {agent['agent_id']:<24} {agent['state']:<9} {agent.get('current_task_id') or ''}")
    queue = snap["queue"]
    print("queue: " + "  ".join(f"{k}={v}" for k, v in queue.items()))
    t = snap["totals"]
    print(f"totals: cost ${t['cost_usd']:.6f}  claude-equivalent ${t['equivalent_claude_cost_usd']:.6f}  "
          f"saved ${t['savings_usd']:.6f}  tokens {t['tokens_in']} in / {t['tokens_out']} out")
    return 0


def cmd_endpoints(args: argparse.Namespace) -> int:
    client = AdminClient(args.hub, args.token, args.db)
    if args.endpoints_command == "add":
        body = {"host": args.host, "kind": args.kind}
        if args.port:
            body["port"] = args.port
        if args.name:
            body["name"] = args.name
        print(json.dumps(client.request("POST", "/agentcom/api/endpoints", body)))
    elif args.endpoints_command == "remove":
        client.request("DELETE", "/agentcom/api/endpoints?id=" + urllib.parse.quote(args.endpoint_id))
        print(f"removed {args.endpoint_id}")
    else:
        for ep in client.request("GET", "/agentcom/api/endpoints"):
            print(f"{ep['endpoint_id']:<28} {ep.get('kind', 'ollama'):<7} {ep['status']:<9} {','.join(ep.get('models', []))}")
    return 0


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="agentcom", description="Coordinate AI coding agents and account for their cost.")
    parser.add_argument("--version", action="version", version=f"agentcom {__import__('agentcom').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    hub = sub.add_parser("hub", help="run a standalone hub")
    hub.add_argument("--db", help="SQLite file (default ~/.agentcom/hub.db or $AGENTCOM_DB)")
    hub.add_argument("--config", help="TOML settings file")
    _add_settings_flags(hub)
    hub.set_defaults(func=cmd_hub)

    token = sub.add_parser("token", help="manage sidecar tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True, parser_class=_Parser)
    for name in ("create", "revoke"):
        p = token_sub.add_parser(name)
        p.add_argument("agent_id")
        p.add_argument("--db")
    token_sub.add_parser("list").add_argument("--db")
    token.set_defaults(func=cmd_token)

    def client_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--hub", help=f"hub URL (default $AGENTCOM_HUB or {DEFAULT_HUB})")
        p.add_argument("--token", help="admin token (default $AGENTCOM_ADMIN_TOKEN or the file next to --db)")
        p.add_argument("--db", help="the hub's DB, to find its admin token file")

    submit = sub.add_parser("submit", help="queue a task")
    submit.add_argument("description")
    submit.add_argument("--priority", default="normal", choices=("urgent", "high", "normal", "low"))
    submit.add_argument("--tier", choices=("trivial", "standard", "complex", "unknown"))
    submit.add_argument("--shell-command")
    submit.add_argument("--capability", action="append")
    client_flags(submit)
    submit.set_defaults(func=cmd_submit)

    status = sub.add_parser("status", help="agents, queue counts and totals")
    status.add_argument("--json", action="store_true")
    client_flags(status)
    status.set_defaults(func=cmd_status)

    endpoints = sub.add_parser("endpoints", help="LLM endpoint registry")
    ep_sub = endpoints.add_subparsers(dest="endpoints_command", required=True, parser_class=_Parser)
    add = ep_sub.add_parser("add")
    add.add_argument("host")
    add.add_argument("--port", type=int)
    add.add_argument("--name")
    add.add_argument("--kind", choices=("ollama", "openai"), default="ollama")
    client_flags(add)
    rm = ep_sub.add_parser("remove")
    rm.add_argument("endpoint_id")
    client_flags(rm)
    client_flags(ep_sub.add_parser("list"))
    endpoints.set_defaults(func=cmd_endpoints)

    for name, (module, help_text) in _LAZY_COMMANDS.items():
        # Imported only when chosen: the sidecar pulls in every executor's SDK (seconds of imports).
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.set_defaults(lazy_module=module)
    return parser


_LAZY_COMMANDS = {"sidecar": ("agentcom.sidecar.cli", "run one sidecar"),
                  "demo": ("agentcom.demo", "run the embedded demo")}


def _lazy_subcommand(name: str, module_name: str) -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(prog=f"agentcom {name}")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        parser.set_defaults(func=lambda args: _fail(f"{parser.prog} is not available in this build"))
        return parser
    module.add_arguments(parser)
    parser.set_defaults(func=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    module_name = getattr(args, "lazy_module", None)
    if module_name is not None:
        args = _lazy_subcommand(args.command, module_name).parse_args(extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except AgentComError as exc:
        return _fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
