-- Reconciliation: runs that compare a tenant's inventory with what one provider's carrier holds
-- (asked for by an administrator or by the schedule), and the drift each run found. A run is
-- taken up by one worker under a lease, as bulk operations are; at most one run of a tenant
-- and provider is open (pending or running) at a time.
CREATE TABLE reconciliations (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    provider_id   TEXT NOT NULL,
    trigger       TEXT NOT NULL CHECK (trigger IN ('SCHEDULE', 'REQUEST')),
    state         TEXT NOT NULL CHECK (state IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')),
    checked       INTEGER NOT NULL DEFAULT 0 CHECK (checked >= 0), -- numbers compared so far
    error         TEXT,                                             -- why it failed
    create_time   INTEGER NOT NULL,                                 -- microseconds since 1970
    start_time    INTEGER,
    end_time      INTEGER,
    lease_owner   TEXT,
    lease_expires INTEGER,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX reconciliations_one_open ON reconciliations (tenant_id, provider_id)
    WHERE state IN ('PENDING', 'RUNNING');
CREATE INDEX reconciliations_open ON reconciliations (lease_expires)
    WHERE state IN ('PENDING', 'RUNNING');
CREATE INDEX reconciliations_by_provider ON reconciliations (tenant_id, provider_id, id);

CREATE TABLE drift_items (
    tenant_id           TEXT NOT NULL,
    reconciliation_id   TEXT NOT NULL,
    phone_number        TEXT NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('MISSING_AT_CARRIER', 'UNKNOWN_TO_SERVICE',
                            'ACTIVATION_DIFFERS', 'LOCATION_DIFFERS', 'TARGET_DIFFERS')),
    carrier_state       TEXT CHECK (carrier_state IN ('ACTIVE', 'PENDING', 'INACTIVE')),
    carrier_target_id   TEXT,
    carrier_location_id TEXT,
    PRIMARY KEY (tenant_id, reconciliation_id, phone_number, kind),
    FOREIGN KEY (tenant_id, reconciliation_id) REFERENCES reconciliations (tenant_id, id)
        ON DELETE CASCADE
);
CREATE INDEX drift_items_by_kind ON drift_items (tenant_id, reconciliation_id, kind, phone_number);
