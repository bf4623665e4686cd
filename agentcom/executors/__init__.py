"""Executors: the backends that do a task's work (shell, Ollama, Claude, ...).

Each implements ``agentcom.executors.base.Executor``; ``Dispatcher`` picks one by the
task's target type, drives it and prices the outcome with the price table.
"""

from agentcom.executors._retry import BackendError, RetryPolicy
from agentcom.executors.base import Executor, Outcome, Output, OutputKind, Step
from agentcom.executors.claude import ClaudeExecutor
from agentcom.executors.dispatch import Dispatcher, Finished, OnOutput
from agentcom.executors.ollama import OllamaExecutor
from agentcom.executors.shell import ShellExecutor

__all__ = [
    "BackendError",
    "ClaudeExecutor",
    "Dispatcher",
    "Executor",
    "Finished",
    "OllamaExecutor",
    "OnOutput",
    "Outcome",
    "Output",
    "OutputKind",
    "RetryPolicy",
    "ShellExecutor",
    "Step",
]
