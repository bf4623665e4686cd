"""Tornado handlers: thin adapters from HTTP and WebSocket to the hub core.

Handler *logic* lives in mixins; ``routes.route_table`` combines them with an auth base
class (the standalone hub's bearer-token base here, or Jupyter's ``APIHandler`` in the
server extension), so both modes serve the very same code.
"""

from __future__ import annotations

import csv
import functools
import hmac
import io
import logging
import sqlite3
from typing import Any, Awaitable, Callable

import msgspec
from tornado import web, websocket
from tornado.iostream import StreamClosedError

from agentcom.errors import InvalidJson, NotFound, ProtocolError, StoreUnavailable, ValidationFailed
from agentcom.hub.wsframes import BatchedFrameProtocol, text_frame
from agentcom.protocol import codec
from agentcom.protocol.api import EndpointRegistration, TaskSubmission

log = logging.getLogger(__name__)

EXECUTION_COLUMNS = (
    "task_id", "generation", "agent_id", "tier", "target_type", "endpoint", "model_used", "tokens_in", "tokens_out",
    "cache_read_tokens", "cache_write_tokens", "estimated_cost_usd", "equivalent_claude_cost_usd", "savings_usd",
    "execution_ms", "status", "error", "fallback_used", "completed_at", "price_table",
)


def json_api(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a handler method; ProtocolErrors become JSON answers with their HTTP status."""

    @functools.wraps(method)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            result = method(self, *args, **kwargs)
            if isinstance(result, Awaitable):
                await result
        except ProtocolError as exc:
            self.set_status(exc.http_status)
            self.write_json(codec.error_body(exc))
        except sqlite3.Error as exc:  # a write outside the core (e.g. the endpoint registry) on a full/read-only disk
            log.error("store error answering %s: %s", self.request.path, exc)
            self.hub.core.store.group.refused(exc)
            self.set_status(StoreUnavailable.http_status)
            self.write_json(codec.error_body(StoreUnavailable(f"the hub cannot use its store now: {exc}")))

    return wrapper


class ApiMixin:
    """Shared helpers of every API handler; needs ``self.hub`` (set by initialize)."""

    hub: Any

    def initialize(self, hub: Any) -> None:
        self.hub = hub

    def write_json(self, body: Any, status: int | None = None) -> None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        if status is not None:
            handler.set_status(status)
        handler.set_header("Content-Type", "application/json; charset=UTF-8")
        handler.finish(codec.encode_bytes(body))

    async def committed(self) -> None:
        """Answer only once the writes are committed (they may have joined a group commit)."""
        if not await self.hub.core.store.group.committed():
            raise StoreUnavailable("the hub could not store this change; try again")

    def json_body(self) -> Any:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        try:
            return msgspec.json.decode(handler.request.body or b"null")
        except msgspec.DecodeError as exc:  # the culprit is the body as a whole: field "$", as in validation errors
            raise InvalidJson(f"request body is not valid JSON: {exc}", errors=[{"field": "$", "error": str(exc)}]) from None
        except RecursionError:
            raise InvalidJson("request body is not valid JSON: nested too deeply",
                              errors=[{"field": "$", "error": "nested too deeply"}]) from None

    def int_arg(self, name: str, default: int, lo: int, hi: int) -> int:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        raw = handler.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ValidationFailed(f"{name} must be an integer, got {raw!r}",
                                   [{"field": name, "error": f"expected integer, got {raw!r}"}]) from None
        if not lo <= value <= hi:
            raise ValidationFailed(f"{name} must be between {lo} and {hi}, got {value}",
                                   [{"field": name, "error": f"must be between {lo} and {hi}"}])
        return value

    def choice_arg(self, name: str, choices: tuple[str, ...]) -> str | None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        raw = handler.get_query_argument(name, None)
        if raw in (None, ""):
            return None
        if raw not in choices:
            raise ValidationFailed(f"{name} must be one of {', '.join(choices)}, got {raw!r}",
                                   [{"field": name, "error": f"must be one of {', '.join(choices)}"}])
        return raw


class HealthLogic(ApiMixin):
    def get(self) -> None:
        failed_at, error = self.hub.core.store.group.current_failure() or (None, None)
        body = {"status": "ok" if error is None else "degraded", "version": self.hub.version,
                "agents": len(self.hub.core.agents),
                "store": {"writable": error is None, "error": error, "failed_at": failed_at}}
        if error is None:
            self.write_json(body)
        else:  # a monitor reads the status code; HubClient.health() raises StoreUnavailable with the message
            self.write_json({**body, "error": "store_unavailable",
                             "message": f"the hub cannot write its store: {error}"}, status=503)


class TasksLogic(ApiMixin):
    @web.authenticated
    @json_api
    async def post(self) -> None:
        submission = codec.convert(self.json_body(), TaskSubmission)
        self.hub.core.store.group.begin()
        task = self.hub.submit(submission)
        await self.committed()
        handler: web.RequestHandler = self  # type: ignore[assignment]
        handler.set_header("Location", f"{handler.request.path}/{task.task_id}")
        self.write_json({"task_id": task.task_id, "status": task.status, "complexity": task.complexity,
                         "priority": submission.priority, "max_attempts": task.max_attempts}, status=201)

    @web.authenticated
    @json_api
    def get(self) -> None:
        from agentcom.store.tasks import ALL_STATES

        status = self.choice_arg("status", ALL_STATES)
        tier = self.choice_arg("tier", ("trivial", "standard", "complex", "unknown"))
        handler: web.RequestHandler = self  # type: ignore[assignment]
        agent_id = handler.get_query_argument("agent_id", None) or None
        limit = self.int_arg("limit", 100, 1, 1000)
        offset = self.int_arg("offset", 0, 0, 10**9)
        tasks, count = self.hub.core.store.query(status=status, agent_id=agent_id, tier=tier, limit=limit, offset=offset)
        from agentcom.hub.core import task_summary

        self.write_json({"tasks": [task_summary(self.hub.core.tasks.get(t.task_id, t)) for t in tasks],
                         "count": count, "limit": limit, "offset": offset})


class TaskLogic(ApiMixin):
    @web.authenticated
    @json_api
    def get(self, task_id: str) -> None:
        self.write_json(self.hub.core.task_detail(task_id))


class TaskActionLogic(ApiMixin):
    @web.authenticated
    @json_api
    async def post(self, task_id: str, action: str) -> None:
        self.hub.core.store.group.begin()
        task = self.hub.core.cancel(task_id) if action == "cancel" else self.hub.core.retry(task_id)
        await self.committed()
        self.write_json({"task_id": task.task_id, "status": task.status, "generation": task.generation})


class AgentsLogic(ApiMixin):
    @web.authenticated
    @json_api
    def get(self) -> None:
        self.write_json([a.view() for a in self.hub.core.agents.values()])


class SnapshotLogic(ApiMixin):
    @web.authenticated
    @json_api
    def get(self) -> None:
        self.write_json(self.hub.core.snapshot())


class ExecutionsLogic(ApiMixin):
    @web.authenticated
    @json_api
    def get(self) -> None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        since = self.int_arg("since", 0, 0, 2**62)
        fmt = self.choice_arg("format", ("json", "csv", "parquet")) or "json"
        rows = list(self.hub.core.store.executions(since=since or None))
        if fmt == "json":
            self.write_json(rows)
        elif fmt == "csv":
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=EXECUTION_COLUMNS, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            handler.set_header("Content-Type", "text/csv; charset=UTF-8")
            handler.set_header("Content-Disposition", 'attachment; filename="executions.csv"')
            handler.finish(buffer.getvalue())
        else:
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError:
                raise ValidationFailed("format=parquet needs pyarrow installed on the hub",
                                       [{"field": "format", "error": "parquet unavailable (pip install pyarrow)"}]) from None
            table = pa.Table.from_pylist(rows) if rows else pa.table({c: pa.array([], pa.string()) for c in EXECUTION_COLUMNS})
            sink = io.BytesIO()
            pq.write_table(table, sink)
            handler.set_header("Content-Type", "application/vnd.apache.parquet")
            handler.set_header("Content-Disposition", 'attachment; filename="executions.parquet"')
            handler.finish(sink.getvalue())


class EndpointsLogic(ApiMixin):
    @web.authenticated
    @json_api
    def get(self) -> None:
        self.write_json(self.hub.endpoints_view())

    @web.authenticated
    @json_api
    async def post(self) -> None:
        registration = codec.convert(self.json_body(), EndpointRegistration)
        self.write_json(await self.hub.register_endpoint(registration), status=201)

    @web.authenticated
    @json_api
    def delete(self) -> None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        endpoint_id = handler.get_query_argument("id", None)
        if not endpoint_id:
            body = self.json_body() if handler.request.body else {}
            endpoint_id = body.get("id") if isinstance(body, dict) else None
            if not endpoint_id and isinstance(body, dict) and body.get("host"):
                endpoint_id = f"{body['host']}:{body.get('port') or 11434}"
        if not endpoint_id:
            raise ValidationFailed("give the endpoint as ?id=host:port", [{"field": "id", "error": "required"}])
        if not self.hub.remove_endpoint(endpoint_id):
            raise NotFound(f"no endpoint {endpoint_id!r}")
        self.write_json({"removed": endpoint_id})


class SidecarSocketHandler(websocket.WebSocketHandler):
    """``/agentcom/ws/sidecar``: authenticated by sidecar tokens in ``identify``, never by cookies."""

    def initialize(self, hub: Any) -> None:
        self.hub = hub
        self.session: Any = None
        self._compressed = False

    @property
    def max_message_size(self) -> int:  # the Jupyter app has no websocket_max_message_size setting
        return int(self.hub.settings.max_frame_bytes)

    def check_origin(self, origin: str) -> bool:
        return False  # sidecars are programs: a browser page must never open this socket

    def get_websocket_protocol(self) -> websocket.WebSocketProtocol | None:
        """Tornado's protocol, reading frames in batches (``agentcom.hub.wsframes``)."""
        protocol = super().get_websocket_protocol()
        if type(protocol) is websocket.WebSocketProtocol13:
            return BatchedFrameProtocol(self, protocol.mask_outgoing, protocol.params)
        return protocol

    def prepare(self) -> None:
        """An address cooling down (``agentcom.hub.guard``) is answered 429 before the upgrade."""
        left, why = self.hub.guard.refused_for(self.request.remote_ip or "")
        if left:
            self.set_status(429)
            self.set_header("Retry-After", str(-(-left // 1000)))
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish(codec.encode_bytes({"error": "rate_limited", "message": f"{why}; try again in {left} ms",
                                            "retry_after_ms": left}))

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.set_nodelay(True)
        self._compressed = self.get_compression_options() is not None
        self.session = self.hub.new_sidecar_session(self._send_frame, self._close, address=self.request.remote_ip or "")
        self.session.send_many = self._send_frames

    def _send_frame(self, frame: msgspec.Struct) -> None:
        self._send_frames((frame,))

    def _send_frames(self, frames: list[msgspec.Struct] | tuple[msgspec.Struct, ...]) -> None:
        """Frames as UTF-8 JSON text frames in one socket write: one syscall, one segment for the sidecar.

        Written to the stream directly: ``write_message`` would make one write and one asyncio task
        per frame. With permessage-deflate (never offered here unless a subclass does) it is used."""
        conn = self.ws_connection
        if conn is None or conn.is_closing() or conn.stream is None:
            return
        try:
            if self._compressed:
                for frame in frames:
                    self.write_message(codec.encode_bytes(frame))
            else:
                conn.stream.write(b"".join([text_frame(codec.encode_bytes(frame)) for frame in frames]))
        except (StreamClosedError, websocket.WebSocketClosedError):
            pass

    def _close(self, code: int, reason: str) -> None:
        self.close(code, reason)

    def on_message(self, message: str | bytes) -> None:
        self.session.on_text(message)

    def on_close(self) -> None:
        if self.session is not None:
            self.session.on_close()


class StandaloneAuth(web.RequestHandler):
    """Base for the standalone hub: ``Authorization: Bearer <admin token>`` or ``?token=``."""

    admin_token: str = ""

    def get_current_user(self) -> str | None:
        header = self.request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else self.get_query_argument("token", "")
        expected = self.settings.get("agentcom_admin_token", "")
        if token and expected and hmac.compare_digest(token.encode(), expected.encode()):
            return "admin"
        return None

    def get_login_url(self) -> str:
        raise web.HTTPError(401, "missing or invalid admin token")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 403 and self.current_user is None:
            # ``web.authenticated`` answers 403 to a POST without credentials (401 only to GET):
            # missing or wrong credentials are 401 whatever the method.
            self.set_status(401)
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish(codec.encode_bytes({"error": "unauthorized", "message": "missing or invalid admin token"}))
            return
        reason = self._reason or "error"
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or reason
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}.get(
            status_code, "error")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(codec.encode_bytes({"error": code, "message": message}))
