-- Job leases for PostgreSQL's shared queue (the process on it, a fencing counter bumped at every
-- claim, when it runs out), and the rows of the shared DashScope budget (`tokens` is unused).
ALTER TABLE jobs ADD COLUMN lease_owner text;
ALTER TABLE jobs ADD COLUMN lease_epoch integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lease_expires_at timestamptz;
CREATE INDEX jobs_queued ON jobs (id) WHERE state = 'queued';
CREATE TABLE wan_buckets (
    name text PRIMARY KEY,
    tokens double precision NOT NULL,
    stamp double precision NOT NULL
);
