"""Fixtures for the local model tier: the shipped SmolLM2, a real llama.cpp server, a scripted one.

``llama_server`` runs ``python -m llama_cpp.server`` on SmolLM2 for the whole session.
``scripted_server`` speaks the OpenAI chat wire format (SSE stream, JSON errors) from a
thread and misbehaves on request: the model name picks the script (see ``_Scripted``), so
tests check what a real client sees over a real socket, and count the requests it made.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from agentcom.executors.local_llama import LocalLlamaExecutor
from agentcom.executors.local_model import find_local_model
from agentcom.protocol.messages import (
    Complexity,
    ComplexitySignals,
    InferredComplexity,
    KeywordSignals,
    RoutingDecision,
    TaskAssign,
)

SERVER_START_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_task(
    description: str = "Say hello in one short sentence.",
    *,
    target_type: str = "local",
    endpoint: str | None = None,
    model: str | None = None,
    task_id: str = "task-1",
    **metadata: Any,
) -> TaskAssign:
    """A routed ``task_assign`` as the hub would send it."""
    signals = ComplexitySignals(word_count=len(description.split()), file_count=0, verification_count=0,
                                keywords=KeywordSignals(complex=False, trivial=True))
    return TaskAssign(
        task_id=task_id,
        generation=1,
        description=description,
        priority="normal",
        metadata=metadata,
        assigned_at=int(time.time() * 1000),
        complexity=Complexity(effective_tier="trivial", source="inferred", explicit_tier=None,
                              inferred=InferredComplexity(tier="trivial", confidence=0.9, signals=signals)),
        routing_decision=RoutingDecision(
            effective_tier="trivial", target_type=target_type, selected_endpoint=endpoint, selected_model=model,
            fallback_used=False, fallback_from_tier=None, fallback_reason=None, candidate_count=1,
            classification_reason="test", estimated_cost_tier="free", decided_at=int(time.time() * 1000),
        ),
    )


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    return find_local_model("auto")


@pytest.fixture(scope="session")
def local_executor() -> Iterator[LocalLlamaExecutor]:
    """One embedded SmolLM2 for the session (it loads on the first run)."""
    executor = LocalLlamaExecutor(max_tokens=16)
    yield executor
    executor.close()


@pytest.fixture(scope="session")
def direct_llama(smollm2_path: Path) -> Iterator[Any]:
    """SmolLM2 through llama-cpp-python alone: the reference for what the model reports."""
    import llama_cpp

    llama = llama_cpp.Llama(model_path=str(smollm2_path), n_ctx=2048, seed=0, verbose=False)
    yield llama
    llama.close()


# --------------------------------------------------------------------------- llama.cpp's server


class LlamaServer:
    """The running ``llama_cpp.server``: its ``host:port`` and what it has logged so far."""

    def __init__(self, endpoint: str, log_path: Path) -> None:
        self.endpoint = endpoint
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def llama_server(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """``python -m llama_cpp.server`` serving SmolLM2, started once; killed at the end."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path),
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--seed", "0"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            _wait_for_models(proc, port, log_path)
            yield LlamaServer(f"127.0.0.1:{port}", log_path)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for_models(proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"llama_cpp.server did not answer /v1/models within {SERVER_START_TIMEOUT_S:.0f} s")


# --------------------------------------------------------------------------- a scripted server


class _Scripted(BaseHTTPRequestHandler):
    """POST /v1/chat/completions, scripted by the model name's prefix.

    ``ok-*``: streams "Hello", " world" and a usage chunk (prompt 11, completion 2).
    ``flaky-*``: HTTP 500 for the first two requests of that name, then ``ok``.
    ``busy-*``: HTTP 429 with ``Retry-After: 0`` once, then ``ok``.
    ``down-*``: HTTP 503 always.  ``bad-*``: HTTP 400 always.
    ``broken-*``: one token, then an error event inside the stream.
    ``endless-*``: a token every 10 ms until the client hangs up (recorded in ``hung_up``).
    ``nousage-*``: streams like ``ok`` without the usage chunk, as llama-cpp-python's server
    does; a non-streamed request answers with usage (prompt 23).
    ``mute-*``: streams without usage and answers a non-streamed request with HTTP 404.
    ``cut-*``: one token, then ``[DONE]`` with no finish_reason (an interrupted stream).
    """

    protocol_version = "HTTP/1.1"
    requests: Counter[str]  # these two are set on the subclass the fixture builds
    hung_up: set[str]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = body["model"]
        self.requests[model] += 1
        seen = self.requests[model]
        if model.startswith("bad-"):
            return self._error(400, "max_tokens is too large", "invalid_request_error")
        if model.startswith("down-"):
            return self._error(503, "overloaded", "server_error")
        if model.startswith("flaky-") and seen <= 2:
            return self._error(500, "internal failure", "server_error")
        if model.startswith("busy-") and seen <= 1:
            return self._error(429, "slow down", "rate_limit_error", {"Retry-After": "0"})
        if model.startswith("endless-"):
            return self._endless(model)
        if not body.get("stream"):
            if model.startswith("nousage-"):
                return self._complete(model)
            return self._error(404, "only streams here", "invalid_request_error")
        self._stream(model, broken=model.startswith("broken-"),
                     usage=not model.startswith(("nousage-", "mute-")))

    def _complete(self, model: str) -> None:
        payload = json.dumps({
            "id": "chatcmpl-2", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 23, "completion_tokens": 1, "total_tokens": 24},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps({"error": {"message": message, "type": kind}}).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", "Content-Length": str(len(payload)),
                            **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _start_stream(self, model: str) -> dict[str, Any]:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": model}

    def _endless(self, model: str) -> None:
        base = self._start_stream(model)
        chunk = f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': {'content': 'la'}}]})}\n\n".encode()
        try:
            for _ in range(30_000):  # five minutes at most
                self.wfile.write(chunk)
                self.wfile.flush()
                time.sleep(0.01)
        except OSError:
            self.hung_up.add(model)

    def _stream(self, model: str, *, broken: bool, usage: bool = True) -> None:
        base = self._start_stream(model)
        events: list[dict[str, Any]] = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}}]},
        ]
        if broken:
            events.append({"error": {"message": "model crashed", "type": "server_error"}})
        elif model.startswith("cut-"):
            pass
        else:
            events += [
                {**base, "choices": [{"index": 0, "delta": {"content": " world"}}]},
                {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            ]
            if usage:
                events.append({**base, "choices": [],
                               "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}})
        for event in events:
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class ScriptedServer:
    """The running scripted server: its ``host:port``, the requests it saw per model and
    the models whose client hung up mid-stream."""

    def __init__(self, endpoint: str, requests: Counter[str], hung_up: set[str]) -> None:
        self.endpoint = endpoint
        self.requests = requests
        self.hung_up = hung_up


@pytest.fixture(scope="session")
def scripted_server() -> Iterator[ScriptedServer]:
    requests: Counter[str] = Counter()
    hung_up: set[str] = set()
    handler = type("Handler", (_Scripted,), {"requests": requests, "hung_up": hung_up})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="scripted-openai", daemon=True)
    thread.start()
    try:
        yield ScriptedServer(f"127.0.0.1:{server.server_address[1]}", requests, hung_up)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def task_factory() -> Callable[..., TaskAssign]:
    return make_task
