"""The SQLite store: schema and migrations, tasks and executions, sidecar tokens."""

from agentcom.store.db import open_db, transaction
from agentcom.store.tasks import Task, TaskStore

__all__ = ["Task", "TaskStore", "open_db", "transaction"]
