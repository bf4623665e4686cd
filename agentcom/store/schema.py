"""The SQLite schema and its migrations.

Each entry of ``MIGRATIONS`` moves the schema one version up, inside one transaction;
``PRAGMA user_version`` records where a file is. Never edit a shipped migration: add one.
Money is stored as integer nano-USD (1e-9 USD) so sums are exact; NULL means "no price".
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: tasks, history, executions, tokens, endpoints, meta
    """
    CREATE TABLE tasks (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- FIFO order inside a priority, kept on requeue
        task_id TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL,
        priority INTEGER NOT NULL,               -- 0 urgent, 1 high, 2 normal, 3 low
        status TEXT NOT NULL,                    -- queued assigned working completed failed dead_letter cancelled
        generation INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        assigned_to TEXT,
        assigned_at INTEGER,
        metadata TEXT NOT NULL DEFAULT '{}',
        file_hints TEXT NOT NULL DEFAULT '[]',
        success_criteria TEXT NOT NULL DEFAULT '[]',
        verification_steps TEXT NOT NULL DEFAULT '[]',
        needed_capabilities TEXT NOT NULL DEFAULT '[]',
        depends_on TEXT NOT NULL DEFAULT '[]',
        assign_to TEXT,
        complexity TEXT NOT NULL,
        routing_decision TEXT,
        result TEXT,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        completed_at INTEGER
    );
    CREATE INDEX tasks_ready ON tasks(status, priority, seq);
    CREATE INDEX tasks_agent ON tasks(assigned_to, status);
    CREATE TABLE task_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL,
        at INTEGER NOT NULL,
        event TEXT NOT NULL,
        generation INTEGER NOT NULL,
        agent_id TEXT,
        details TEXT
    );
    CREATE INDEX task_history_task ON task_history(task_id, id);
    CREATE TABLE executions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL,
        generation INTEGER NOT NULL,
        agent_id TEXT,
        tier TEXT,
        target_type TEXT,
        endpoint TEXT,
        model_used TEXT,
        tokens_in INTEGER NOT NULL,
        tokens_out INTEGER NOT NULL,
        cache_read_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        cost_nusd INTEGER,                       -- estimated_cost_usd * 1e9, NULL = unknown price
        equivalent_claude_cost_nusd INTEGER,     -- NULL = not applicable
        execution_ms INTEGER NOT NULL,
        status TEXT NOT NULL,                    -- success | failed
        error TEXT,
        fallback_used INTEGER NOT NULL DEFAULT 0,
        completed_at INTEGER NOT NULL,
        price_table TEXT NOT NULL,
        UNIQUE(task_id, generation)              -- exactly one row per finished generation
    );
    CREATE INDEX executions_completed ON executions(completed_at);
    CREATE TABLE agent_tokens (
        agent_id TEXT PRIMARY KEY,
        salt BLOB NOT NULL,
        digest BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE TABLE endpoints (
        endpoint_id TEXT PRIMARY KEY,            -- host:port
        kind TEXT NOT NULL DEFAULT 'ollama',     -- ollama | openai
        host TEXT NOT NULL,
        port INTEGER NOT NULL,
        name TEXT,
        source TEXT NOT NULL,                    -- manual | auto
        agent_id TEXT,
        status TEXT NOT NULL DEFAULT 'unknown',  -- unknown | healthy | unhealthy
        models TEXT NOT NULL DEFAULT '[]',
        loaded_models TEXT NOT NULL DEFAULT '[]',
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        registered_at INTEGER NOT NULL,
        last_checked_at INTEGER
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: tasks_agent on assigned_to alone. It was (assigned_to, status), so every change of status
    # (three per task) rewrote an entry of it; now only an assignment or a requeue does. Listing an
    # agent's tasks with a status filters that agent's entries.
    """
    DROP INDEX tasks_agent;
    CREATE INDEX tasks_agent ON tasks(assigned_to);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
