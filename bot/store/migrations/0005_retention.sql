-- Retention (WANBOT_RETENTION_DAYS): what the usage reports read of days whose reservations and
-- jobs were purged, summed per day, scope and kind of job ('edit' for a job without one), filled
-- in the same transaction as the purge deletes them. Reports add it to what is still there.
CREATE TABLE usage_days (
    day date NOT NULL,
    scope bigint NOT NULL,
    kind text NOT NULL,
    charged integer NOT NULL DEFAULT 0,
    billed integer NOT NULL DEFAULT 0,
    PRIMARY KEY (day, scope, kind)
) /* sqlite: WITHOUT ROWID */;
-- What the purge looks up: old member days, jobs made from another job, and the few finished jobs
-- that never held a reservation.
CREATE INDEX member_days_day ON member_days (day);
CREATE INDEX jobs_parent ON jobs (parent_job_id) WHERE parent_job_id IS NOT NULL;
CREATE INDEX jobs_unreserved ON jobs (finished_at) WHERE reservation_id IS NULL;
-- A job's interaction token is forgotten when it ends; those that ended before, now.
UPDATE jobs SET interaction_token = NULL
    WHERE interaction_token IS NOT NULL AND state IN ('done', 'failed', 'cancelled');
