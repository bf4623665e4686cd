"""The text an LLM executor sends for a task: the same for every model backend.

A task's description, file hints, success criteria and verification steps become one
user message; ``metadata["system"]`` may replace the default system prompt.
"""

from __future__ import annotations

from agentcom.protocol.messages import TaskAssign

__all__ = ["DEFAULT_SYSTEM", "system_prompt", "task_prompt"]

DEFAULT_SYSTEM = (
    "You are a coding agent coordinated by AgentCom. Do the task you are given; answer with the "
    "change or a short, concrete plan, and say how the success criteria are met."
)


def system_prompt(task: TaskAssign) -> str:
    custom = task.metadata.get("system")
    return custom if isinstance(custom, str) and custom.strip() else DEFAULT_SYSTEM


def task_prompt(task: TaskAssign) -> str:
    lines = [task.description.strip()]
    if task.file_hints:
        lines += ["", "Relevant files:"]
        lines += [f"- {h.path}" + (f" ({h.reason})" if h.reason else "") for h in task.file_hints]
    if task.success_criteria:
        lines += ["", "Success criteria:"] + [f"- {c}" for c in task.success_criteria]
    if task.verification_steps:
        lines += ["", "Verification:"]
        lines += [f"- {v.type} {v.target}" + (f": {v.description}" if v.description else "")
                  for v in task.verification_steps]
    return "\n".join(lines)
