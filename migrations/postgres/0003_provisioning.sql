-- Provisioning that survives the real world: operations, their per-number provisioning jobs
-- with leases (so replicas never run one job twice, and a crashed replica's jobs are picked up
-- by another), and leases on notifications being delivered.

-- The operation of a number's last change: GetOperation tells how it went.
ALTER TABLE phone_numbers ADD COLUMN operation_id TEXT COLLATE "C";

CREATE TABLE operations (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    id          TEXT COLLATE "C" NOT NULL, -- UUIDv7
    kind        TEXT NOT NULL,             -- the audit action of the request, e.g. ASSIGN_PHONE_NUMBER
    state       TEXT NOT NULL CHECK (state IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')),
    error       TEXT,
    request_id  TEXT,
    actor       TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- One provider call to make per number of an operation. The id is also the idempotency key
-- the provider gets, so a call repeated after a crash is the same request to the provider.
CREATE TABLE provisioning_jobs (
    id                    TEXT COLLATE "C" PRIMARY KEY,
    tenant_id             TEXT COLLATE "C" NOT NULL,
    operation_id          TEXT COLLATE "C" NOT NULL,
    phone_number          TEXT COLLATE "C" NOT NULL,
    action                TEXT NOT NULL CHECK (action IN ('ACTIVATE', 'DEACTIVATE', 'UPDATE_LOCATION')),
    provider_id           TEXT NOT NULL,
    target_id             TEXT NOT NULL,
    emergency_location_id TEXT,
    previous_location_id  TEXT,
    state                 TEXT NOT NULL CHECK (state IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')),
    ticket                TEXT,
    reason                TEXT,
    attempts              BIGINT NOT NULL DEFAULT 0, -- provider calls made
    failures              BIGINT NOT NULL DEFAULT 0, -- consecutive retryable failures
    next_attempt_time     BIGINT NOT NULL,
    lease_owner           TEXT,
    lease_expires         BIGINT,
    completed_by          TEXT,
    create_time           BIGINT NOT NULL,
    update_time           BIGINT NOT NULL,
    FOREIGN KEY (tenant_id, operation_id) REFERENCES operations (tenant_id, id)
);
CREATE INDEX provisioning_jobs_due ON provisioning_jobs (state, next_attempt_time);
CREATE INDEX provisioning_jobs_by_operation ON provisioning_jobs (tenant_id, operation_id);

ALTER TABLE notifications ADD COLUMN lease_owner TEXT;
ALTER TABLE notifications ADD COLUMN lease_expires BIGINT;
