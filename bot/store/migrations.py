"""The sqlite schema, as a list of forward migrations. `PRAGMA user_version` = migrations applied.

Never edit a migration that has shipped: append a new one. Each runs inside the start-up transaction.
"""

from __future__ import annotations

import sqlite3

from bot.store.errors import StoreError

_FINAL_STATES = "('done', 'failed', 'cancelled')"

# Version 1: quotas, reservations, audit, jobs, meta.
_V1 = (
    """CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    # Per-scope settings. A scope is a guild id; DMs are scope 0.
    """CREATE TABLE scope_settings (
        scope INTEGER PRIMARY KEY,
        default_limit INTEGER CHECK (default_limit >= 0),
        daily_cap INTEGER CHECK (daily_cap > 0)
    )""",
    # Per-member settings that outlive a day.
    """CREATE TABLE members (
        scope INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        daily_limit INTEGER CHECK (daily_limit >= 0),
        extra INTEGER NOT NULL DEFAULT 0 CHECK (extra >= 0),
        blocked INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, user_id)
    ) WITHOUT ROWID""",
    # One member's spending on one UTC day. used/held count the daily allowance;
    # extra_used/extra_held the images paid with extra images.
    """CREATE TABLE member_days (
        scope INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        day TEXT NOT NULL,
        used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
        held INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
        extra_used INTEGER NOT NULL DEFAULT 0 CHECK (extra_used >= 0),
        extra_held INTEGER NOT NULL DEFAULT 0 CHECK (extra_held >= 0),
        PRIMARY KEY (scope, user_id, day)
    ) WITHOUT ROWID""",
    # A scope's spending on one UTC day, for the server cap. Never reset by admins: it is the bill.
    """CREATE TABLE scope_days (
        scope INTEGER NOT NULL,
        day TEXT NOT NULL,
        used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
        held INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
        PRIMARY KEY (scope, day)
    ) WITHOUT ROWID""",
    """CREATE TABLE reservations (
        id INTEGER PRIMARY KEY,
        scope INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        day TEXT NOT NULL,
        images INTEGER NOT NULL CHECK (images > 0),
        from_extra INTEGER NOT NULL CHECK (from_extra BETWEEN 0 AND images),
        status TEXT NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'settled', 'released')),
        charged INTEGER NOT NULL DEFAULT 0 CHECK (charged BETWEEN 0 AND images),
        created_at TEXT NOT NULL,
        closed_at TEXT
    )""",
    "CREATE INDEX reservations_held ON reservations (id) WHERE status = 'held'",
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        scope INTEGER NOT NULL,
        actor INTEGER NOT NULL,
        action TEXT NOT NULL,
        target INTEGER,
        old TEXT,
        new TEXT,
        at TEXT NOT NULL
    )""",
    "CREATE INDEX audit_scope ON audit (scope, id)",
    """CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        scope INTEGER NOT NULL,
        guild_id INTEGER,
        channel_id INTEGER NOT NULL,
        thread_id INTEGER,
        user_id INTEGER NOT NULL,
        source TEXT NOT NULL,
        message_id INTEGER,
        application_id INTEGER,
        interaction_token TEXT,
        token_expires_at TEXT,
        prompt TEXT NOT NULL,
        negative_prompt TEXT,
        options TEXT NOT NULL DEFAULT '{}',
        inputs TEXT NOT NULL DEFAULT '[]',
        parent_job_id INTEGER REFERENCES jobs (id),
        parent_index INTEGER,
        task_id TEXT,
        state TEXT NOT NULL CHECK (state IN ('validating', 'queued', 'submitted', 'running',
                                             'delivering', 'done', 'failed', 'cancelled')),
        reservation_id INTEGER REFERENCES reservations (id),
        result_message_ids TEXT NOT NULL DEFAULT '[]',
        generated INTEGER,
        error_code TEXT,
        error_message TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        submitted_at TEXT,
        finished_at TEXT,
        extra TEXT NOT NULL DEFAULT '{}'
    )""",
    f"CREATE INDEX jobs_unfinished ON jobs (id) WHERE state NOT IN {_FINAL_STATES}",
    "CREATE INDEX jobs_user ON jobs (user_id, id)",
    "CREATE INDEX jobs_message ON jobs (message_id) WHERE message_id IS NOT NULL",
    "CREATE INDEX jobs_reservation ON jobs (reservation_id) WHERE reservation_id IS NOT NULL",
    # Our result messages -> their job, so a reply or a button on a result finds what made it.
    """CREATE TABLE job_results (
        message_id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL REFERENCES jobs (id)
    )""",
)

# Version 2: the owner's bounds (issue 11): role limits, the bot-wide day, refusals by reason, and
# what Wan billed per job. `bot_days` starts from what the servers already spent.
_V2 = (
    # A daily limit for members with a role; a member's own limit wins, among roles the highest.
    """CREATE TABLE role_limits (
        scope INTEGER NOT NULL,
        role_id INTEGER NOT NULL,
        daily_limit INTEGER NOT NULL CHECK (daily_limit >= 0),
        PRIMARY KEY (scope, role_id)
    ) WITHOUT ROWID""",
    # Every scope's spending on one UTC day together, for the bot-wide cap.
    """CREATE TABLE bot_days (
        day TEXT PRIMARY KEY,
        used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
        held INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0)
    ) WITHOUT ROWID""",
    "INSERT INTO bot_days (day, used, held) SELECT day, SUM(used), SUM(held) FROM scope_days"
    " GROUP BY day",
    # Requests refused by `reserve`, by reason, counted in the refusal's own transaction.
    """CREATE TABLE refusal_days (
        scope INTEGER NOT NULL,
        day TEXT NOT NULL,
        reason TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        images INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, day, reason)
    ) WITHOUT ROWID""",
    # Images Wan reported generating for the job (`usage.image_count`): what the owner is billed.
    "ALTER TABLE jobs ADD COLUMN billed INTEGER CHECK (billed >= 0)",
    "CREATE INDEX reservations_day ON reservations (day, scope)",
    # Jobs whose images Wan billed, by scope and day (the owner's report of billed-but-undelivered).
    "CREATE INDEX jobs_billed ON jobs (scope, finished_at) WHERE billed > 0",
)

# Version 3: job leases (several processes share one PostgreSQL queue; sqlite has the columns so
# both schemas stay the same for `migrate_db`) and the shared DashScope rate buckets.
_V3 = (
    "ALTER TABLE jobs ADD COLUMN lease_owner TEXT",
    "ALTER TABLE jobs ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE jobs ADD COLUMN lease_expires_at TEXT",
    "CREATE INDEX jobs_queued ON jobs (id) WHERE state = 'queued'",
    """CREATE TABLE wan_buckets (
        name TEXT PRIMARY KEY,
        tokens REAL NOT NULL,
        stamp REAL NOT NULL
    )""",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, where: str) -> int:
    """Bring the schema up to date inside the caller's write transaction; return the old version."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"{where} has schema version {current}, but this wanbot only knows up to "
            f"{SCHEMA_VERSION}: it was written by a newer wanbot. Upgrade wanbot, or point "
            "DATABASE_URL at another file."
        )
    for version in range(current, SCHEMA_VERSION):
        for statement in MIGRATIONS[version]:
            conn.execute(statement)
    if current != SCHEMA_VERSION:
        # PRAGMA takes no parameters; the value is our own integer.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return current
