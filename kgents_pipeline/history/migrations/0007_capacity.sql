-- Runs spread over N k6 runners (execution segments), and capacity searches with their knee.
-- Depends only on 0001-0004: migrations 0005 and 0006 come from other work and touch none of this.

-- A run of N runners is one row of `runs`, its figures computed from the union of the runners'
-- raw points (kgents_pipeline.history.merge). NULL for a single-runner run.
ALTER TABLE runs ADD COLUMN runners INTEGER;
-- Why one runner's share is not evidence (killed, no summary, too few requests, ...), naming
-- the runner: a single invalid runner makes the whole run invalid.
ALTER TABLE runs ADD COLUMN runner_problems VARCHAR;

-- One row per runner of a multi-runner run, as that runner's own k6 saw its share.
CREATE TABLE IF NOT EXISTS run_runners (
    run_id             VARCHAR NOT NULL,
    runner             INTEGER NOT NULL,     -- 1..N, as k6-operator numbers its runners
    name               VARCHAR NOT NULL,     -- its directory under runners/
    segment            VARCHAR,              -- --execution-segment, e.g. '1/2:1'
    exit_code          INTEGER,
    outcome            VARCHAR NOT NULL,
    summary_present    BOOLEAN NOT NULL,
    http_reqs          BIGINT,
    ok_reqs            BIGINT,
    p95_ms             DOUBLE,               -- this runner's own p95 (its summary): not the run's
    error_rate         DOUBLE,
    dropped_iterations BIGINT,
    thresholds_ok      BOOLEAN,              -- this runner's own thresholds, over its share only
    points_rows        BIGINT NOT NULL,
    valid              BOOLEAN NOT NULL,
    invalid_reasons    VARCHAR[] NOT NULL,
    PRIMARY KEY (run_id, runner)
);

-- A capacity search: the arrival rate stepped up until a step failed; the knee is the highest
-- rate that held. Its steps are archived runs too, but never rows of `runs`: they are not the
-- launch load and must not become the run the verdict judges.
CREATE TABLE IF NOT EXISTS capacity_searches (
    search_id        VARCHAR PRIMARY KEY,
    started_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ,
    target_url       VARCHAR,
    target_kind      VARCHAR NOT NULL,       -- demo | remote (demo: a rehearsal)
    k6_version       VARCHAR,
    script_sha256    VARCHAR,
    runners          INTEGER NOT NULL,
    start_rps        DOUBLE NOT NULL,
    factor           DOUBLE NOT NULL,
    max_rps          DOUBLE NOT NULL,
    step_s           DOUBLE NOT NULL,
    knee_rps         DOUBLE,                 -- highest rate that held (NULL: none held)
    first_failed_rps DOUBLE,                 -- the step that failed (NULL: max reached)
    failed_because   VARCHAR,
    valid            BOOLEAN NOT NULL,       -- every step was a measurement (k6 finished)
    invalid_reasons  VARCHAR[] NOT NULL,
    archive_dir      VARCHAR,
    recorded_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS capacity_steps (
    search_id          VARCHAR NOT NULL,
    step               INTEGER NOT NULL,
    rate               DOUBLE NOT NULL,      -- planned arrival rate (req/s)
    run_id             VARCHAR NOT NULL,     -- the step's archived run
    exit_code          INTEGER,
    achieved_rps       DOUBLE,
    http_reqs          BIGINT,
    dropped_iterations BIGINT,
    p95_ms             DOUBLE,               -- successful requests only
    error_rate         DOUBLE,
    held               BOOLEAN NOT NULL,
    why                VARCHAR NOT NULL,     -- what held, or what failed
    PRIMARY KEY (search_id, step)
);

-- One row per capacity search, newest last: the knee and what broke it.
CREATE OR REPLACE VIEW capacity_knee AS
SELECT
    s.search_id,
    s.started_at,
    s.target_kind,
    s.target_url,
    s.runners,
    s.knee_rps,
    s.first_failed_rps,
    s.failed_because,
    s.max_rps,
    s.knee_rps IS NOT NULL AND s.first_failed_rps IS NULL AS reached_max,
    (SELECT count(*) FROM capacity_steps c WHERE c.search_id = s.search_id) AS steps,
    s.valid,
    s.invalid_reasons
FROM capacity_searches s
ORDER BY s.started_at;
