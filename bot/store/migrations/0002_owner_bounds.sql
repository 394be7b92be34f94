-- The owner's bounds: role limits, the bot-wide day, refusals by reason, and what Wan billed per
-- job. `bot_days` starts from what the servers already spent.

-- A daily limit for members with a role; a member's own limit wins, among roles the highest.
CREATE TABLE role_limits (
    scope bigint NOT NULL,
    role_id bigint NOT NULL,
    daily_limit integer NOT NULL CHECK (daily_limit >= 0),
    PRIMARY KEY (scope, role_id)
) /* sqlite: WITHOUT ROWID */;

-- Every scope's spending on one UTC day together, for the bot-wide cap. Its row is also the lock
-- every change to the day's quota takes first (see bot/store/ledger.py).
CREATE TABLE bot_days (
    day date PRIMARY KEY,
    used integer NOT NULL DEFAULT 0 CHECK (used >= 0),
    held integer NOT NULL DEFAULT 0 CHECK (held >= 0)
) /* sqlite: WITHOUT ROWID */;
INSERT INTO bot_days (day, used, held) SELECT day, SUM(used), SUM(held) FROM scope_days GROUP BY day;

-- Requests refused by `reserve`, by reason, counted in the refusal's own transaction.
CREATE TABLE refusal_days (
    scope bigint NOT NULL,
    day date NOT NULL,
    reason text NOT NULL,
    requests integer NOT NULL DEFAULT 0,
    images integer NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, day, reason)
) /* sqlite: WITHOUT ROWID */;

-- Images Wan reported generating for the job (`usage.image_count`): what the owner is billed.
ALTER TABLE jobs ADD COLUMN billed integer CHECK (billed >= 0);
CREATE INDEX reservations_day ON reservations (day, scope);
-- Jobs whose images Wan billed, by scope and day (the owner's report of billed-but-undelivered).
CREATE INDEX jobs_billed ON jobs (scope, finished_at) WHERE billed > 0;
