"""Real protocol frames for the sidecar tests (built through agentcom.protocol, never by hand)."""

from __future__ import annotations

from typing import Any

from agentcom.protocol import messages as m


def assign(task_id: str = "task-1", generation: int = 1, *, command: str | None = None,
           target: str = "sidecar", tier: str = "trivial", **metadata: Any) -> m.TaskAssign:
    if command is not None:
        metadata["shell_command"] = command
    signals = m.ComplexitySignals(word_count=3, file_count=0, verification_count=0,
                                  keywords=m.KeywordSignals(complex=False, trivial=False))
    return m.TaskAssign(
        task_id=task_id, generation=generation, description="print hello", priority="normal",
        metadata=metadata, assigned_at=1_700_000_000_000,
        complexity=m.Complexity(effective_tier=tier, source="explicit", explicit_tier=tier,
                                inferred=m.InferredComplexity(tier=tier, confidence=1.0, signals=signals)),
        routing_decision=m.RoutingDecision(
            effective_tier=tier, target_type=target, selected_endpoint=None, selected_model=None,
            fallback_used=False, fallback_from_tier=None, fallback_reason=None, candidate_count=1,
            classification_reason="explicit", estimated_cost_tier="free", decided_at=1_700_000_000_000),
    )


def result(status: str = "success", output: str = "hello\n") -> m.ExecutionResult:
    return m.ExecutionResult(status=status, output=output, model_used="none", tokens_in=0, tokens_out=0,
                             estimated_cost_usd=0.0, equivalent_claude_cost_usd=None, execution_ms=5,
                             price_table="test")
