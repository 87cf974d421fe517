-- Bulk operations (BulkUpsertUsers, BulkAssignPhoneNumbers, BulkRemovePhoneNumbers,
-- BulkUpdateEmergencyLocations): an operation like any other, with the call's progress and the
-- lease of the worker running it here, and one row per item with its request and, once it ran,
-- its outcome. Purged with their operation (operation_retention_days). (PostgreSQL's 0010 has
-- no SQLite counterpart: this store's keys led with the tenant already.)
CREATE TABLE bulk_operations (
    tenant_id     TEXT NOT NULL,
    operation_id  TEXT NOT NULL,
    method        TEXT NOT NULL,    -- the single call each item is, e.g. AssignPhoneNumber
    validate_only INTEGER NOT NULL, -- a plan: every item is checked, nothing changes
    caller        TEXT NOT NULL,    -- JSON: who asked; the items run as this caller
    total         INTEGER NOT NULL CHECK (total > 0),
    succeeded     INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    lease_owner   TEXT,
    lease_expires INTEGER,
    PRIMARY KEY (tenant_id, operation_id),
    FOREIGN KEY (tenant_id, operation_id) REFERENCES operations (tenant_id, id),
    CHECK (succeeded >= 0 AND failed >= 0 AND succeeded + failed <= total)
);
CREATE INDEX bulk_operations_unfinished ON bulk_operations (lease_expires)
    WHERE succeeded + failed < total;

CREATE TABLE bulk_items (
    tenant_id    TEXT NOT NULL,
    operation_id TEXT NOT NULL,
    item         INTEGER NOT NULL CHECK (item >= 0), -- its index in the call
    request_id   TEXT,                               -- the item's own, if it had one
    request      TEXT NOT NULL,                      -- JSON: the item as the service runs it
    outcome      TEXT,                               -- JSON: how it went; NULL until it ran
    failed       INTEGER,                            -- whether it failed; NULL until it ran
    PRIMARY KEY (tenant_id, operation_id, item),
    FOREIGN KEY (tenant_id, operation_id) REFERENCES bulk_operations (tenant_id, operation_id),
    CHECK ((outcome IS NULL) = (failed IS NULL))
);
