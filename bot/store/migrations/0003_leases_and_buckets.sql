-- Job leases for the queue several processes share on PostgreSQL (sqlite has the columns too, so
-- both schemas stay the same for `migrate-db`): the process working on a job (`lease_owner`), a
-- fencing counter bumped at every claim (`lease_epoch`) and when the lease runs out unless renewed.
-- And the rows of the DashScope budget shared by those processes (`stamp`: the server's epoch
-- seconds before which no grant is due; `tokens` is unused).
ALTER TABLE jobs ADD COLUMN lease_owner text;
ALTER TABLE jobs ADD COLUMN lease_epoch integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lease_expires_at timestamptz;
CREATE INDEX jobs_queued ON jobs (id) WHERE state = 'queued';
CREATE TABLE wan_buckets (
    name text PRIMARY KEY,
    tokens double precision NOT NULL,
    stamp double precision NOT NULL
);
