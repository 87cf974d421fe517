-- Bulk work at scale.
--
-- GetOperation's failed results of a bulk operation are found by an index of the failed items
-- alone: a client polling a call of 100,000 items that all succeed no longer scans them all.
CREATE INDEX bulk_items_failed ON bulk_items (tenant_id, operation_id, item) WHERE failed;

-- No planner statistics on the columns that only carry payloads (no query filters or joins on
-- them): ANALYZE, which autovacuum runs again and again while a bulk call fills these tables,
-- otherwise samples and compares thousands of JSON documents each time.
ALTER TABLE bulk_items ALTER COLUMN request SET STATISTICS 0,
    ALTER COLUMN outcome SET STATISTICS 0;
ALTER TABLE request_ids ALTER COLUMN response SET STATISTICS 0,
    ALTER COLUMN fingerprint SET STATISTICS 0;
ALTER TABLE audit_events ALTER COLUMN before SET STATISTICS 0,
    ALTER COLUMN after SET STATISTICS 0;
