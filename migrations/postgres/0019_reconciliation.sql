-- Reconciliation: runs that compare a tenant's inventory with what one provider's carrier holds
-- (asked for by an administrator or by the schedule), and the drift each run found. A run is
-- taken up by one replica under a lease, as bulk operations are; at most one run of a tenant
-- and provider is open (pending or running) at a time, so schedulers of several replicas
-- cannot queue the same run twice.
CREATE TABLE reconciliations (
    tenant_id     TEXT COLLATE "C" NOT NULL,
    id            UUID NOT NULL,
    provider_id   TEXT NOT NULL,
    trigger       TEXT NOT NULL CHECK (trigger IN ('SCHEDULE', 'REQUEST')),
    state         TEXT NOT NULL CHECK (state IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')),
    checked       BIGINT NOT NULL DEFAULT 0 CHECK (checked >= 0), -- numbers compared so far
    error         TEXT,                                            -- why it failed
    create_time   TIMESTAMPTZ NOT NULL,
    start_time    TIMESTAMPTZ,
    end_time      TIMESTAMPTZ,
    lease_owner   TEXT,
    lease_expires TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX reconciliations_one_open ON reconciliations (tenant_id, provider_id)
    WHERE state IN ('PENDING', 'RUNNING');
-- Every replica's worker looks for open runs whose lease expired.
CREATE INDEX reconciliations_open ON reconciliations (lease_expires NULLS FIRST)
    WHERE state IN ('PENDING', 'RUNNING');
-- ListReconciliations: a tenant's runs, newest first (ids are UUIDv7, ordered by time).
CREATE INDEX reconciliations_by_provider ON reconciliations (tenant_id, provider_id, id);

-- One row per number and kind of drift; the carrier's view of the number, NULL where it does
-- not hold it.
CREATE TABLE drift_items (
    tenant_id           TEXT COLLATE "C" NOT NULL,
    reconciliation_id   UUID NOT NULL,
    phone_number        TEXT COLLATE "C" NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('MISSING_AT_CARRIER', 'UNKNOWN_TO_SERVICE',
                            'ACTIVATION_DIFFERS', 'LOCATION_DIFFERS', 'TARGET_DIFFERS')),
    carrier_state       TEXT CHECK (carrier_state IN ('ACTIVE', 'PENDING', 'INACTIVE')),
    carrier_target_id   TEXT,
    carrier_location_id TEXT,
    PRIMARY KEY (tenant_id, reconciliation_id, phone_number, kind),
    FOREIGN KEY (tenant_id, reconciliation_id) REFERENCES reconciliations (tenant_id, id)
        ON DELETE CASCADE
);
-- GetReconciliation's items of one kind, in number order.
CREATE INDEX drift_items_by_kind ON drift_items (tenant_id, reconciliation_id, kind, phone_number);

ALTER TABLE reconciliations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON reconciliations TO numbers_service
    USING (tenant_id = current_setting('numbers.tenant', true)
           OR current_setting('numbers.tenant', true) = '*');
GRANT SELECT, INSERT, UPDATE, DELETE ON reconciliations TO numbers_service;
ALTER TABLE drift_items ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON drift_items TO numbers_service
    USING (tenant_id = current_setting('numbers.tenant', true)
           OR current_setting('numbers.tenant', true) = '*');
GRANT SELECT, INSERT, UPDATE, DELETE ON drift_items TO numbers_service;
