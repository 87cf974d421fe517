-- Notifications that cannot be abused: a tenant declares its verified email domains, and emails
-- go only to user principal names in them; the others are recorded as SKIPPED, with the reason
-- in last_error, and never sent.
CREATE TABLE notification_settings (
    tenant_id              TEXT PRIMARY KEY,
    verified_email_domains TEXT NOT NULL, -- a JSON array of lower-case domains
    update_time            INTEGER NOT NULL
);

-- SQLite cannot change a CHECK constraint: the table is rebuilt with the new state.
CREATE TABLE notifications_new (
    tenant_id         TEXT NOT NULL,
    id                TEXT NOT NULL,
    recipient         TEXT NOT NULL,
    subject           TEXT NOT NULL,
    body              TEXT NOT NULL,
    phone_number      TEXT NOT NULL,
    create_time       INTEGER NOT NULL,
    state             TEXT NOT NULL DEFAULT 'PENDING'
                      CHECK (state IN ('PENDING', 'SENT', 'FAILED', 'SKIPPED')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_time INTEGER NOT NULL,
    last_error        TEXT,
    lease_owner       TEXT,
    lease_expires     INTEGER,
    PRIMARY KEY (tenant_id, id)
);
INSERT INTO notifications_new (tenant_id, id, recipient, subject, body, phone_number,
    create_time, state, attempts, next_attempt_time, last_error, lease_owner, lease_expires)
SELECT tenant_id, id, recipient, subject, body, phone_number, create_time, state, attempts,
    next_attempt_time, last_error, lease_owner, lease_expires
FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_due ON notifications (next_attempt_time) WHERE state = 'PENDING';
