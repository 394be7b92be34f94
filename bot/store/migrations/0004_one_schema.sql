-- The two engines' schemas made one: until version 3 each engine had its own migration list, and
-- sqlite indexed held reservations by id and had no index of results by job.
DROP INDEX IF EXISTS reservations_held;
CREATE INDEX reservations_held ON reservations (created_at) WHERE status = 'held';
CREATE INDEX IF NOT EXISTS job_results_job ON job_results (job_id);
