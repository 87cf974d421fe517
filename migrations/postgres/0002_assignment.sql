-- The assignment engine: provider numbers in one tenant at a time, the audit trail, and the
-- notifications to deliver.

-- A Calling Plan or Operator Connect number belongs to one tenant at a time; this is what
-- keeps two concurrent acquisitions (or uploads) from handing out one number twice. Direct
-- Routing numbers are the customers' own and are not checked across tenants.
CREATE UNIQUE INDEX phone_numbers_provider_number_in_one_tenant
    ON phone_numbers (phone_number) WHERE number_type <> 'DIRECT_ROUTING';

-- Who changed what and when, written in the same transaction as the change.
CREATE TABLE audit_events (
    tenant_id    TEXT COLLATE "C" NOT NULL,
    id           TEXT COLLATE "C" NOT NULL, -- UUIDv7: time-ordered
    time         BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    phone_number TEXT COLLATE "C",
    user_id      TEXT COLLATE "C",
    request_id   TEXT,
    before       TEXT, -- JSON
    after        TEXT, -- JSON
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_events_by_number ON audit_events (tenant_id, phone_number, id);
CREATE INDEX audit_events_by_user ON audit_events (tenant_id, user_id, id);

-- Emails to users about their numbers (notify_user), written with the change, sent later.
CREATE TABLE notifications (
    tenant_id         TEXT COLLATE "C" NOT NULL,
    id                TEXT COLLATE "C" NOT NULL,
    recipient         TEXT NOT NULL,
    subject           TEXT NOT NULL,
    body              TEXT NOT NULL,
    phone_number      TEXT NOT NULL,
    create_time       BIGINT NOT NULL,
    state             TEXT NOT NULL DEFAULT 'PENDING' CHECK (state IN ('PENDING', 'SENT', 'FAILED')),
    attempts          BIGINT NOT NULL DEFAULT 0,
    next_attempt_time BIGINT NOT NULL,
    last_error        TEXT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX notifications_due ON notifications (state, next_attempt_time);
