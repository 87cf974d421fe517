-- Bulk work at scale: GetOperation's failed results of a bulk operation are found by an index
-- of the failed items alone, so polling a call whose items all succeed scans none of them.
CREATE INDEX bulk_items_failed ON bulk_items (tenant_id, operation_id, item) WHERE failed;
