"""The PostgreSQL job store's tables (jobs with lease columns, workers per machine, files seen by intake, the
side effects' intents) and the SQL fragments every query shares; pg_migrations applies them in order."""

NOW = "extract(epoch from clock_timestamp())::float8"  # the database's clock, the same for every machine

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id BIGSERIAL PRIMARY KEY,
    content_sha TEXT NOT NULL,
    style_set TEXT NOT NULL,
    params_hash TEXT NOT NULL,
    source_path TEXT NOT NULL,
    rel_path TEXT NOT NULL,
    output_path TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    started DOUBLE PRECISION,
    finished DOUBLE PRECISION,
    next_attempt DOUBLE PRECISION NOT NULL DEFAULT 0,
    worker TEXT,
    heartbeat DOUBLE PRECISION,
    progress_iteration INTEGER,
    progress_total INTEGER,
    progress_loss DOUBLE PRECISION,
    progress_eta DOUBLE PRECISION,
    seconds DOUBLE PRECISION,
    generation INTEGER NOT NULL DEFAULT 0,
    machine TEXT,
    lease_token TEXT,
    lease_expires DOUBLE PRECISION,
    UNIQUE (content_sha, style_set, params_hash, generation)
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_output ON jobs (output_path);
CREATE INDEX IF NOT EXISTS jobs_queued ON jobs (id) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS jobs_running ON jobs (lease_expires) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS jobs_content ON jobs (content_sha, style_set);
CREATE INDEX IF NOT EXISTS jobs_source ON jobs (source_path);
CREATE TABLE IF NOT EXISTS workers (
    machine TEXT NOT NULL,
    id TEXT NOT NULL,
    pid INTEGER NOT NULL,
    state TEXT NOT NULL,
    backbone TEXT,
    started DOUBLE PRECISION NOT NULL,
    heartbeat DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (machine, id)
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    sha TEXT NOT NULL,
    seen DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS files_sha ON files (sha);
"""

JOB_COLUMNS = ("id, content_sha, style_set, params_hash, source_path, rel_path, output_path, state, attempts, "
                "error, created, updated, started, finished, next_attempt, worker, heartbeat, progress_iteration, "
                "progress_total, progress_loss, progress_eta, seconds, generation, machine, lease_expires")

# Migration 2. token: the caller's own id for one record_intent call, so repeating it after a reconnect (the
# commit may have landed before the connection broke) finds the row instead of adding a second one.
INTENTS = """
CREATE TABLE IF NOT EXISTS intents (
    id BIGSERIAL PRIMARY KEY,
    job_id BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    step TEXT NOT NULL,
    payload TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    machine TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS intents_job ON intents (job_id, id);
CREATE INDEX IF NOT EXISTS intents_machine ON intents (machine, id);
"""
