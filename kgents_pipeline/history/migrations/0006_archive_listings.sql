-- What the run archive held when a writer (ingest, rebuild) last listed it, so the verdict need
-- not list a large archive again while the archive directory is unchanged (its mtime changes
-- whenever a run directory is added, removed or renamed). `lacking` names the directories then
-- not in the history (the verdict checks them again); the verdict lists the archive itself
-- whenever this row is older than the directory, or too close to it to be sure.
CREATE TABLE archive_listings (
    root       VARCHAR PRIMARY KEY,     -- the archive directory, resolved
    mtime_ns   BIGINT NOT NULL,         -- its mtime when listed
    listed_at  TIMESTAMPTZ NOT NULL,
    entries    BIGINT NOT NULL,         -- subdirectories it held
    lacking    VARCHAR[] NOT NULL,      -- those not in the history (at most 1000)
    more_lacking BIGINT NOT NULL        -- and how many more
);
