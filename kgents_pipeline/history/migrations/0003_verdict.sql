-- Operator controls over the history (who, when, why) and every launch-readiness verdict.
-- Written by kgents_pipeline.history.controls; read by kgents_pipeline.history.snapshot.

-- A run an operator declared unusable as evidence (bad target, wrong build, noisy neighbour...).
CREATE TABLE run_invalidations (
    run_id          VARCHAR PRIMARY KEY,
    reason          VARCHAR NOT NULL,
    invalidated_by  VARCHAR NOT NULL,
    invalidated_at  TIMESTAMPTZ NOT NULL
);

-- Pinned baseline history: the row with the highest pin_id is the current one; a row with a
-- NULL run_id clears the pin. Nothing is ever deleted, so the verdict as of a past time is exact.
CREATE SEQUENCE baseline_pin_seq START 1;
CREATE TABLE baseline_pins (
    pin_id     BIGINT PRIMARY KEY DEFAULT nextval('baseline_pin_seq'),
    run_id     VARCHAR,
    reason     VARCHAR NOT NULL,
    pinned_by  VARCHAR NOT NULL,
    pinned_at  TIMESTAMPTZ NOT NULL
);

-- A rule whose failure is non-blocking until `until`; every waiver is listed in every verdict.
CREATE SEQUENCE waiver_seq START 1;
CREATE TABLE waivers (
    waiver_id  BIGINT PRIMARY KEY DEFAULT nextval('waiver_seq'),
    rule       VARCHAR NOT NULL,
    until      TIMESTAMPTZ NOT NULL,
    reason     VARCHAR NOT NULL,
    waived_by  VARCHAR NOT NULL,
    waived_at  TIMESTAMPTZ NOT NULL
);

-- Every verdict evaluated as of the present, with the sha256 of its inputs (history as of
-- evaluated_at, checklist, policy): the same hash means the same evidence. A what-if verdict
-- (`verdict --now`, the `now` config of launch_readiness) is never recorded here.
CREATE SEQUENCE readiness_verdict_seq START 1;
CREATE TABLE readiness_verdicts (
    verdict_id     BIGINT PRIMARY KEY DEFAULT nextval('readiness_verdict_seq'),
    evaluated_at   TIMESTAMPTZ NOT NULL,     -- the "now" the verdict was evaluated as of
    recorded_at    TIMESTAMPTZ NOT NULL,
    state          VARCHAR NOT NULL,         -- READY | NOT_READY | INSUFFICIENT_DATA | INVALID_RUN
    rehearsal      BOOLEAN NOT NULL,
    inputs_sha256  VARCHAR NOT NULL,
    latest_run_id  VARCHAR,
    source         VARCHAR NOT NULL,         -- cli | dagster | ...
    reasons        JSON NOT NULL,
    waivers        JSON NOT NULL,
    verdict        JSON NOT NULL             -- the whole verdict as `verdict --format json` prints it
);

-- The newest recorded verdict (verdict_id follows recording order).
CREATE VIEW latest_verdict AS
SELECT * FROM readiness_verdicts
ORDER BY verdict_id DESC
LIMIT 1;

-- baseline_trend: same columns as 0001, but an operator-invalidated run is not valid, and says why.
CREATE OR REPLACE VIEW baseline_trend AS
SELECT
    r.run_id,
    r.started_at,
    r.target_kind,
    r.target_url,
    r.rate          AS planned_rps,
    r.duration_s    AS planned_duration_s,
    r.p95_ms,
    r.p99_ms,
    r.error_rate,
    r.achieved_rps,
    r.http_reqs,
    r.dropped_iterations,
    r.exit_code,
    r.outcome,
    r.thresholds_ok,
    r.valid AND i.run_id IS NULL AS valid,
    CASE
        WHEN i.run_id IS NULL THEN r.invalid_reasons
        ELSE list_append(r.invalid_reasons,
                         'invalidated by ' || i.invalidated_by || ': ' || i.reason)
    END AS invalid_reasons
FROM runs r
LEFT JOIN run_invalidations i USING (run_id)
ORDER BY r.started_at;
