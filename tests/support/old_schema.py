"""The schema as wanbot wrote it before its migrations became numbered files shared by both engines
(main at 852a5c2: sqlite's list in bot/store/migrations.py, PostgreSQL's in
bot/store/postgres_migrations.py), kept verbatim so the tests can build databases the old code made
and check that today's store upgrades them in place."""

from __future__ import annotations

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

_PG_FINAL_STATES = "('done', 'failed', 'cancelled')"
# Version 1: quotas, reservations, audit, jobs, meta (sqlite's version 1).
_PG_V1 = (
    """CREATE TABLE meta (
        key text PRIMARY KEY,
        value text NOT NULL
    )""",
    # Per-scope settings. A scope is a guild id; DMs are scope 0.
    """CREATE TABLE scope_settings (
        scope bigint PRIMARY KEY,
        default_limit integer CHECK (default_limit >= 0),
        daily_cap integer CHECK (daily_cap > 0)
    )""",
    # Per-member settings that outlive a day.
    """CREATE TABLE members (
        scope bigint NOT NULL,
        user_id bigint NOT NULL,
        daily_limit integer CHECK (daily_limit >= 0),
        extra integer NOT NULL DEFAULT 0 CHECK (extra >= 0),
        blocked boolean NOT NULL DEFAULT false,
        PRIMARY KEY (scope, user_id)
    )""",
    # One member's spending on one UTC day. used/held count the daily allowance;
    # extra_used/extra_held the images paid with extra images.
    """CREATE TABLE member_days (
        scope bigint NOT NULL,
        user_id bigint NOT NULL,
        day date NOT NULL,
        used integer NOT NULL DEFAULT 0 CHECK (used >= 0),
        held integer NOT NULL DEFAULT 0 CHECK (held >= 0),
        extra_used integer NOT NULL DEFAULT 0 CHECK (extra_used >= 0),
        extra_held integer NOT NULL DEFAULT 0 CHECK (extra_held >= 0),
        PRIMARY KEY (scope, user_id, day)
    )""",
    # A scope's spending on one UTC day, for the server cap. Never reset by admins: it is the bill.
    # Its row is also the lock every reservation of the scope's day takes first.
    """CREATE TABLE scope_days (
        scope bigint NOT NULL,
        day date NOT NULL,
        used integer NOT NULL DEFAULT 0 CHECK (used >= 0),
        held integer NOT NULL DEFAULT 0 CHECK (held >= 0),
        PRIMARY KEY (scope, day)
    )""",
    """CREATE TABLE reservations (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        scope bigint NOT NULL,
        user_id bigint NOT NULL,
        day date NOT NULL,
        images integer NOT NULL CHECK (images > 0),
        from_extra integer NOT NULL CHECK (from_extra BETWEEN 0 AND images),
        status text NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'settled', 'released')),
        charged integer NOT NULL DEFAULT 0 CHECK (charged BETWEEN 0 AND images),
        created_at timestamptz NOT NULL,
        closed_at timestamptz
    )""",
    "CREATE INDEX reservations_held ON reservations (created_at) WHERE status = 'held'",
    """CREATE TABLE audit (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        scope bigint NOT NULL,
        actor bigint NOT NULL,
        action text NOT NULL,
        target bigint,
        old jsonb,
        new jsonb,
        at timestamptz NOT NULL
    )""",
    "CREATE INDEX audit_scope ON audit (scope, id)",
    """CREATE TABLE jobs (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        scope bigint NOT NULL,
        guild_id bigint,
        channel_id bigint NOT NULL,
        thread_id bigint,
        user_id bigint NOT NULL,
        source text NOT NULL,
        message_id bigint,
        application_id bigint,
        interaction_token text,
        token_expires_at timestamptz,
        prompt text NOT NULL,
        negative_prompt text,
        options jsonb NOT NULL DEFAULT '{}',
        inputs jsonb NOT NULL DEFAULT '[]',
        parent_job_id bigint REFERENCES jobs (id),
        parent_index integer,
        task_id text,
        state text NOT NULL CHECK (state IN ('validating', 'queued', 'submitted', 'running',
                                             'delivering', 'done', 'failed', 'cancelled')),
        reservation_id bigint REFERENCES reservations (id),
        result_message_ids jsonb NOT NULL DEFAULT '[]',
        generated integer,
        error_code text,
        error_message text,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        submitted_at timestamptz,
        finished_at timestamptz,
        extra jsonb NOT NULL DEFAULT '{}'
    )""",
    f"CREATE INDEX jobs_unfinished ON jobs (id) WHERE state NOT IN {_PG_FINAL_STATES}",
    "CREATE INDEX jobs_user ON jobs (user_id, id)",
    "CREATE INDEX jobs_message ON jobs (message_id) WHERE message_id IS NOT NULL",
    "CREATE INDEX jobs_reservation ON jobs (reservation_id) WHERE reservation_id IS NOT NULL",
    # Our result messages -> their job, so a reply or a button on a result finds what made it.
    """CREATE TABLE job_results (
        message_id bigint PRIMARY KEY,
        job_id bigint NOT NULL REFERENCES jobs (id)
    )""",
    # sqlite finds a job's rows by scanning; here the table is shared and grows: index it.
    "CREATE INDEX job_results_job ON job_results (job_id)",
)

# Version 2: the owner's bounds (issue 11; sqlite's version 2): role limits, the bot-wide day,
# refusals by reason, and what Wan billed per job. `bot_days` starts from what the servers spent.
_PG_V2 = (
    # A daily limit for members with a role; a member's own limit wins, among roles the highest.
    """CREATE TABLE role_limits (
        scope bigint NOT NULL,
        role_id bigint NOT NULL,
        daily_limit integer NOT NULL CHECK (daily_limit >= 0),
        PRIMARY KEY (scope, role_id)
    )""",
    # Every scope's spending on one UTC day together, for the bot-wide cap. Its row is also the
    # lock every reservation of the day takes, right after its scope's day.
    """CREATE TABLE bot_days (
        day date PRIMARY KEY,
        used integer NOT NULL DEFAULT 0 CHECK (used >= 0),
        held integer NOT NULL DEFAULT 0 CHECK (held >= 0)
    )""",
    "INSERT INTO bot_days (day, used, held) SELECT day, SUM(used), SUM(held) FROM scope_days"
    " GROUP BY day",
    # Requests refused by `reserve`, by reason, counted in the refusal's own transaction.
    """CREATE TABLE refusal_days (
        scope bigint NOT NULL,
        day date NOT NULL,
        reason text NOT NULL,
        requests integer NOT NULL DEFAULT 0,
        images integer NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, day, reason)
    )""",
    # Images Wan reported generating for the job (`usage.image_count`): what the owner is billed.
    "ALTER TABLE jobs ADD COLUMN billed integer CHECK (billed >= 0)",
    "CREATE INDEX reservations_day ON reservations (day, scope)",
    # Jobs whose images Wan billed, by scope and day (the owner's report of billed-but-undelivered).
    "CREATE INDEX jobs_billed ON jobs (scope, finished_at) WHERE billed > 0",
)

# Version 3 (sqlite's version 3): job leases for the shared queue (`postgres_queue`): the process
# working on a job (`lease_owner`), a fencing counter bumped at every claim (`lease_epoch`) and when
# the lease runs out unless renewed; and the token buckets of the shared DashScope rate limits
# (`stamp` is the server's epoch seconds at the last take).
_PG_V3 = (
    "ALTER TABLE jobs ADD COLUMN lease_owner text",
    "ALTER TABLE jobs ADD COLUMN lease_epoch integer NOT NULL DEFAULT 0",
    "ALTER TABLE jobs ADD COLUMN lease_expires_at timestamptz",
    "CREATE INDEX jobs_queued ON jobs (id) WHERE state = 'queued'",
    """CREATE TABLE wan_buckets (
        name text PRIMARY KEY,
        tokens double precision NOT NULL,
        stamp double precision NOT NULL
    )""",
)


SQLITE: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3)
POSTGRES: tuple[tuple[str, ...], ...] = (_PG_V1, _PG_V2, _PG_V3)
VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
