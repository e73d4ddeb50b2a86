-- One row per archived k6 run (data/k6/<run_id>/). What we recorded ourselves (run.json) and
-- what we parsed from k6's handleSummary output. `valid`/`invalid_reasons` come from the
-- run-validity rules (kgents_pipeline.history.validity), evaluated at ingest.
CREATE TABLE runs (
    run_id            VARCHAR PRIMARY KEY,
    started_at        TIMESTAMPTZ NOT NULL,
    finished_at       TIMESTAMPTZ,
    exit_code         INTEGER,
    outcome           VARCHAR NOT NULL,      -- runner outcome: passed, thresholds_failed, killed, ...
    k6_version        VARCHAR,
    script_sha256     VARCHAR,
    target_url        VARCHAR,
    target_kind       VARCHAR NOT NULL,      -- demo | remote
    rate              DOUBLE,                -- planned iterations per second
    duration_s        DOUBLE,                -- planned duration
    summary_present   BOOLEAN NOT NULL,
    summary_error     VARCHAR,               -- why the summary could not be parsed, if so
    test_run_duration_s DOUBLE,              -- measured by k6 (state.testRunDurationMs)
    http_reqs         BIGINT,
    ok_reqs           BIGINT,                -- count of http_req_duration{expected_response:true}
    achieved_rps      DOUBLE,
    iterations        BIGINT,
    dropped_iterations BIGINT,               -- 0 when k6 omits the metric (it does when zero)
    p95_ms            DOUBLE,                -- successful requests only; NULL when none succeeded
    p99_ms            DOUBLE,
    p95_all_ms        DOUBLE,                -- all requests (refused connections count as 0 ms)
    error_count       BIGINT,                -- `errors` Rate: passes = failed checks
    error_total       BIGINT,
    error_rate        DOUBLE,
    thresholds_ok     BOOLEAN,
    demo_responses    BIGINT,                -- answers marked "demo": true: the run is a rehearsal
    valid             BOOLEAN NOT NULL,
    invalid_reasons   VARCHAR[] NOT NULL,
    points_rows       BIGINT NOT NULL,       -- raw points loaded into run_points
    points_error      VARCHAR,               -- why points are missing or incomplete, if so
    content_sha256    VARCHAR NOT NULL,      -- hash of run.json + summary.json + points: re-ingest detection
    run_dir           VARCHAR NOT NULL,
    ingested_at       TIMESTAMPTZ NOT NULL
);

-- Every metric value of the summary in long format: one row per (metric, stat).
-- `metric` is k6's own name, submetrics included: 'http_req_duration{expected_response:true}'.
CREATE TABLE run_metrics (
    run_id  VARCHAR NOT NULL,
    metric  VARCHAR NOT NULL,
    type    VARCHAR NOT NULL,                -- counter | gauge | rate | trend
    stat    VARCHAR NOT NULL,                -- count, rate, p(95), passes, ...
    value   DOUBLE,
    PRIMARY KEY (run_id, metric, stat)
);

CREATE TABLE run_thresholds (
    run_id     VARCHAR NOT NULL,
    metric     VARCHAR NOT NULL,
    expression VARCHAR NOT NULL,             -- e.g. 'p(95)<500'
    ok         BOOLEAN NOT NULL,
    PRIMARY KEY (run_id, metric, expression)
);

CREATE TABLE run_checks (
    run_id  VARCHAR NOT NULL,
    path    VARCHAR NOT NULL,                -- group path + check name, e.g. '::status is 200'
    name    VARCHAR NOT NULL,
    passes  BIGINT NOT NULL,
    fails   BIGINT NOT NULL,
    PRIMARY KEY (run_id, path)
);

-- k6 raw points (--out json), loaded with explicit-column read_ndjson.
CREATE TABLE run_points (
    run_id            VARCHAR NOT NULL,
    metric            VARCHAR NOT NULL,
    ts                TIMESTAMPTZ NOT NULL,
    value             DOUBLE,
    status            VARCHAR,
    expected_response VARCHAR,
    error_code        VARCHAR,
    scenario          VARCHAR,
    name              VARCHAR,
    check_name        VARCHAR
);

-- One row per run for people querying trends with SQL.
CREATE VIEW baseline_trend AS
SELECT
    run_id,
    started_at,
    target_kind,
    target_url,
    rate          AS planned_rps,
    duration_s    AS planned_duration_s,
    p95_ms,
    p99_ms,
    error_rate,
    achieved_rps,
    http_reqs,
    dropped_iterations,
    exit_code,
    outcome,
    thresholds_ok,
    valid,
    invalid_reasons
FROM runs
ORDER BY started_at;
