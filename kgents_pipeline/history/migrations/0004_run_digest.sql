-- Each run's content hash (hex sha256 of run.json, summary.json and points) as two 60-bit
-- numbers: their sums over the runs are the digest through which every run the verdict does not
-- read enters its inputs hash (kgents_pipeline.history.queries.runs_digest), in one cheap scan.
-- Rows written before this migration get theirs here; ingest writes them from now on.
ALTER TABLE runs ADD COLUMN content_key_a BIGINT;
ALTER TABLE runs ADD COLUMN content_key_b BIGINT;
UPDATE runs SET
    content_key_a = coalesce(TRY_CAST('0x' || substr(content_sha256, 1, 15) AS BIGINT),
                             CAST('0x' || substr(md5(content_sha256), 1, 15) AS BIGINT)),
    content_key_b = coalesce(TRY_CAST('0x' || substr(content_sha256, 16, 15) AS BIGINT),
                             CAST('0x' || substr(md5(content_sha256), 16, 15) AS BIGINT));
