-- Finished jobs are deleted once they are older than the global config jobs.retention_secs
-- (engine/src/services/jobs.rs); this index finds them without reading the Running ones.
CREATE INDEX jobs_finished_at ON jobs (finished_at) WHERE finished_at IS NOT NULL;
