-- Bulk operations (BulkUpsertUsers, BulkAssignPhoneNumbers, BulkRemovePhoneNumbers,
-- BulkUpdateEmergencyLocations): an operation like any other, with the call's progress and the
-- lease of the worker running it here, and one row per item with its request and, once it ran,
-- its outcome. Purged with their operation (operation_retention_days).
CREATE TABLE bulk_operations (
    tenant_id     TEXT COLLATE "C" NOT NULL,
    operation_id  UUID NOT NULL,
    method        TEXT NOT NULL,    -- the single call each item is, e.g. AssignPhoneNumber
    validate_only BOOLEAN NOT NULL, -- a plan: every item is checked, nothing changes
    caller        JSONB NOT NULL,   -- who asked: the items run as this caller
    total         INTEGER NOT NULL CHECK (total > 0),
    succeeded     INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    lease_owner   TEXT,
    lease_expires TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, operation_id),
    FOREIGN KEY (tenant_id, operation_id) REFERENCES operations (tenant_id, id),
    CHECK (succeeded >= 0 AND failed >= 0 AND succeeded + failed <= total)
);
-- The bulk workers of every replica look for unfinished calls whose lease expired.
CREATE INDEX bulk_operations_unfinished ON bulk_operations (lease_expires NULLS FIRST)
    WHERE succeeded + failed < total;

CREATE TABLE bulk_items (
    tenant_id    TEXT COLLATE "C" NOT NULL,
    operation_id UUID NOT NULL,
    item         INTEGER NOT NULL CHECK (item >= 0), -- its index in the call
    request_id   TEXT,                               -- the item's own, if it had one
    request      JSONB NOT NULL,                     -- the item as the service runs it
    outcome      JSONB,                              -- how it went; NULL until it ran
    failed       BOOLEAN,                            -- whether it failed; NULL until it ran
    PRIMARY KEY (tenant_id, operation_id, item),
    FOREIGN KEY (tenant_id, operation_id) REFERENCES bulk_operations (tenant_id, operation_id),
    CHECK ((outcome IS NULL) = (failed IS NULL))
);

CREATE TRIGGER bulk_operations_wake_workers AFTER INSERT
    ON bulk_operations FOR EACH ROW WHEN (NEW.succeeded + NEW.failed < NEW.total)
    EXECUTE FUNCTION numbers_work_written('bulk');

ALTER TABLE bulk_operations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON bulk_operations TO numbers_service
    USING (tenant_id = current_setting('numbers.tenant', true)
           OR current_setting('numbers.tenant', true) = '*');
GRANT SELECT, INSERT, UPDATE, DELETE ON bulk_operations TO numbers_service;
ALTER TABLE bulk_items ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON bulk_items TO numbers_service
    USING (tenant_id = current_setting('numbers.tenant', true)
           OR current_setting('numbers.tenant', true) = '*');
GRANT SELECT, INSERT, UPDATE, DELETE ON bulk_items TO numbers_service;
