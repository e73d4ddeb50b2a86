-- Why an archived run is not whole: its load test was killed before k6 finished (run.json never
-- completed), or it could not write its directory whole (a full disk). Such a run is never
-- evidence; NULL for every run that is whole.
ALTER TABLE runs ADD COLUMN archive_note VARCHAR;
