-- Every post of a verdict's state change to the notification webhook (KGENTS_NOTIFY_WEBHOOK_URL),
-- delivered or not. Written by kgents_pipeline.history.notifications. Stands alone: it reads
-- and alters no table of another migration. The webhook URL is a credential: only its
-- scheme://host[:port] is kept.
CREATE SEQUENCE IF NOT EXISTS notification_seq START 1;
CREATE TABLE IF NOT EXISTS notifications (
    notification_id  BIGINT PRIMARY KEY DEFAULT nextval('notification_seq'),
    sent_at          TIMESTAMPTZ NOT NULL,
    state            VARCHAR NOT NULL,      -- the verdict state told
    previous_state   VARCHAR,               -- the state told before (NULL: the first)
    verdict_id       BIGINT,                -- readiness_verdicts.verdict_id
    dagster_run_id   VARCHAR,               -- the run that evaluated the verdict
    target           VARCHAR NOT NULL,
    delivered        BOOLEAN NOT NULL,
    attempts         INTEGER NOT NULL,
    status_code      INTEGER,               -- of the last answer; NULL when none came
    error            VARCHAR,               -- why the last attempt failed
    payload          JSON NOT NULL
);
