-- +goose Up

-- dcb_append and dcb_read cache one generic plan per session. A plan made
-- while the log is empty or not yet analysed (a new database, for up to a
-- minute until autovacuum's first ANALYZE) can be a sequential scan, or a
-- bitmap scan that fetches every entry of a key and sorts them, which the
-- session then keeps while the log grows: every probe would read the whole
-- log, or the whole of a key. Their statements are ordered, limited index
-- probes by design, so the planner is told not to consider the others.
ALTER FUNCTION dcb_append SET enable_seqscan = off;
ALTER FUNCTION dcb_append SET enable_bitmapscan = off;
ALTER FUNCTION dcb_read SET enable_seqscan = off;
ALTER FUNCTION dcb_read SET enable_bitmapscan = off;

-- +goose Down
ALTER FUNCTION dcb_read RESET enable_bitmapscan;
ALTER FUNCTION dcb_read RESET enable_seqscan;
ALTER FUNCTION dcb_append RESET enable_bitmapscan;
ALTER FUNCTION dcb_append RESET enable_seqscan;
