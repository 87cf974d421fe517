-- Provisioning that survives the real world: operations, their per-number provisioning jobs
-- with leases (so replicas never run one job twice, and a crashed replica's jobs are picked up
-- by another), and leases on notifications being delivered.

-- The operation of a number's last change: GetOperation tells how it went.
ALTER TABLE phone_numbers ADD COLUMN operation_id TEXT;

CREATE TABLE operations (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL, -- UUIDv7
    kind        TEXT NOT NULL,             -- the audit action of the request, e.g. ASSIGN_PHONE_NUMBER
    state       TEXT NOT NULL CHECK (state IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')),
    error       TEXT,
    request_id  TEXT,
    actor       TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- One provider call to make per number of an operation. The id is also the idempotency key
-- the provider gets, so a call repeated after a crash is the same request to the provider.
CREATE TABLE provisioning_jobs (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL,
    operation_id          TEXT NOT NULL,
    phone_number          TEXT NOT NULL,
    action                TEXT NOT NULL CHECK (action IN ('ACTIVATE', 'DEACTIVATE', 'UPDATE_LOCATION')),
    provider_id           TEXT NOT NULL,
    target_id             TEXT NOT NULL,
    emergency_location_id TEXT,
    previous_location_id  TEXT,
    state                 TEXT NOT NULL CHECK (state IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')),
    ticket                TEXT,
    reason                TEXT,
    attempts              INTEGER NOT NULL DEFAULT 0, -- provider calls made
    failures              INTEGER NOT NULL DEFAULT 0, -- consecutive retryable failures
    next_attempt_time     INTEGER NOT NULL,
    lease_owner           TEXT,
    lease_expires         INTEGER,
    completed_by          TEXT,
    create_time           INTEGER NOT NULL,
    update_time           INTEGER NOT NULL,
    FOREIGN KEY (tenant_id, operation_id) REFERENCES operations (tenant_id, id)
);
CREATE INDEX provisioning_jobs_due ON provisioning_jobs (state, next_attempt_time);
CREATE INDEX provisioning_jobs_by_operation ON provisioning_jobs (tenant_id, operation_id);

ALTER TABLE notifications ADD COLUMN lease_owner TEXT;
ALTER TABLE notifications ADD COLUMN lease_expires INTEGER;
