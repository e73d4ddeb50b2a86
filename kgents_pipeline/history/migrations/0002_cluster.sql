-- Cluster evidence: one row per object per apply (or rehearsal), one row per verification.
CREATE TABLE IF NOT EXISTS apply_events (
    event_id         VARCHAR PRIMARY KEY,        -- run_id + object ref
    run_id           VARCHAR NOT NULL,           -- Dagster run id, or a CLI-generated id
    applied_at       TIMESTAMPTZ NOT NULL,
    mode             VARCHAR NOT NULL,           -- offline | live
    context          VARCHAR,                    -- kube context name (in-cluster / NULL offline)
    rendered_sha256  VARCHAR NOT NULL,
    dry_run          BOOLEAN NOT NULL,
    kind             VARCHAR NOT NULL,
    namespace        VARCHAR,
    name             VARCHAR NOT NULL,
    action           VARCHAR NOT NULL,           -- created | configured | unchanged | failed | not_applied
    written          BOOLEAN NOT NULL,           -- a real (non-dry-run) write was accepted
    diff             VARCHAR,
    error            VARCHAR,
    resource_version VARCHAR,
    source           VARCHAR
);

CREATE TABLE IF NOT EXISTS policy_verifications (
    run_id               VARCHAR PRIMARY KEY,     -- Dagster run id (one verification per run)
    verified_at          TIMESTAMPTZ NOT NULL,
    mode                 VARCHAR NOT NULL,        -- offline | live (offline is a rehearsal)
    context              VARCHAR,
    rendered_sha256      VARCHAR NOT NULL,
    passed               BOOLEAN NOT NULL,
    intent_holds         BOOLEAN NOT NULL,
    drift_count          INTEGER NOT NULL,
    pdb_ok               BOOLEAN NOT NULL,
    labels_ok            BOOLEAN NOT NULL,
    unmatched_selectors  INTEGER NOT NULL,
    violations           JSON NOT NULL,
    report               JSON NOT NULL
);
