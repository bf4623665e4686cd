"""One valid example of every frame of protocol.md, as the JSON a peer would send."""

from __future__ import annotations

from typing import Any

RESULT: dict[str, Any] = {
    "status": "success", "output": "done\n", "model_used": "llama3.2", "tokens_in": 12, "tokens_out": 34,
    "estimated_cost_usd": 0.0, "equivalent_claude_cost_usd": 0.0012, "execution_ms": 250,
    "price_table": "2025-01", "cache_read_tokens": 0, "cache_write_tokens": 0, "verification_status": "passed",
    "attempts": 1,
}
EVENT: dict[str, Any] = {
    "event_type": "token", "text": "Hello", "tokens_so_far": 1, "model": "llama3.2", "timestamp": 1_700_000_000_000,
    "seq": 1,
}

SIDECAR_INBOUND: dict[str, dict[str, Any]] = {
    "identify": {"type": "identify", "agent_id": "agent-1", "token": "acs_secret", "protocol_version": 1,
                 "name": "laptop", "capabilities": ["shell", "gpu"], "ollama_url": "http://127.0.0.1:11434",
                 "models": ["llama3.2"], "resume": [{"task_id": "task-1", "generation": 2}], "concurrency": 1},
    "ping": {"type": "ping"},
    "task_accepted": {"type": "task_accepted", "task_id": "task-1", "generation": 1},
    "task_rejected": {"type": "task_rejected", "task_id": "task-1", "generation": 1, "reason": "busy"},
    "task_progress": {"type": "task_progress", "task_id": "task-1", "generation": 1, "progress": 50.0,
                      "execution_event": EVENT},
    "task_complete": {"type": "task_complete", "task_id": "task-1", "generation": 1, "result": RESULT},
    "task_failed": {"type": "task_failed", "task_id": "task-1", "generation": 1, "error": "exit 2",
                    "retryable": False, "result": {**RESULT, "status": "failed"}},
    "resource_report": {"type": "resource_report", "endpoints": [
        {"endpoint": "http://127.0.0.1:11434", "free_slots": 1, "in_flight": 2, "loaded_models": ["llama3.2:latest"],
         "cpu_percent": 35.5, "ram_total_mb": 32_000.0, "ram_free_mb": 12_000.0, "vram_total_mb": 8_000.0,
         "vram_free_mb": 2_500.0}]},
}

DASHBOARD_INBOUND: dict[str, dict[str, Any]] = {
    "request_snapshot": {"type": "request_snapshot"},
    "cancel_task": {"type": "cancel_task", "task_id": "task-1"},
    "retry_task": {"type": "retry_task", "task_id": "task-1"},
    "subscribe": {"type": "subscribe", "task_id": None},
    "ping": {"type": "ping"},
}

COMPLEXITY: dict[str, Any] = {
    "effective_tier": "standard", "source": "inferred", "explicit_tier": None,
    "inferred": {"tier": "standard", "confidence": 0.6,
                 "signals": {"word_count": 9, "file_count": 1, "verification_count": 1,
                             "keywords": {"complex": False, "trivial": False}}},
}
ROUTING_DECISION: dict[str, Any] = {
    "effective_tier": "standard", "target_type": "ollama", "selected_endpoint": "127.0.0.1:11434",
    "selected_model": "llama3.2", "fallback_used": False, "fallback_from_tier": None, "fallback_reason": None,
    "candidate_count": 2, "classification_reason": "inferred:standard", "estimated_cost_tier": "local",
    "decided_at": 1_700_000_000_000,
}

SIDECAR_OUTBOUND: dict[str, dict[str, Any]] = {
    "identified": {"type": "identified", "agent_id": "agent-1", "protocol_version": 1, "heartbeat_ms": 15000,
                   "lease_ms": 60000},
    "pong": {"type": "pong", "timestamp": 1_700_000_000_000},
    "task_continue": {"type": "task_continue", "task_id": "task-1", "generation": 2},
    "task_reassign": {"type": "task_reassign", "task_id": "task-1"},
    "task_assign": {"type": "task_assign", "task_id": "task-1", "generation": 1, "description": "add a test",
                    "priority": "high", "metadata": {"shell_command": "pytest -q"}, "assigned_at": 1_700_000_000_000,
                    "file_hints": [{"path": "src/a.py", "reason": "the bug"}], "success_criteria": ["tests pass"],
                    "verification_steps": [{"type": "command", "target": "pytest", "description": "run"}],
                    "complexity": COMPLEXITY, "routing_decision": ROUTING_DECISION},
    "task_ack": {"type": "task_ack", "task_id": "task-1", "status": "complete"},
    "task_cancelled": {"type": "task_cancelled", "task_id": "task-1", "generation": 3},
    "error": {"type": "error", "error": "validation_failed", "message": "bad", "message_type": "task_complete",
              "errors": [{"field": "result.output", "error": "missing"}]},
}

DASHBOARD_OUTBOUND: dict[str, dict[str, Any]] = {
    "snapshot": {"type": "snapshot", "data": {"timestamp": 1, "agents": []}},
    "events": {"type": "events", "data": [{"kind": "task", "task": {"task_id": "task-1"}}]},
    "execution_event": {"type": "execution_event", "task_id": "task-1", "generation": 1, "agent_id": "agent-1",
                        "event_type": "stdout", "text": "hi\n", "tokens_so_far": None, "model": None,
                        "timestamp": 1_700_000_000_000, "seq": 4},
    "dropped": {"type": "dropped", "count": 17},
    "command_result": {"type": "command_result", "command": "cancel_task", "task_id": "task-1",
                       "status": "cancelled"},
    "pong": {"type": "pong", "timestamp": 5},
    "error": {"type": "error", "error": "rate_limited", "message": "slow down", "retry_after_ms": 250},
}
