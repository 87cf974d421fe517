-- Notifications that cannot be abused: a tenant declares its verified email domains, and emails
-- go only to user principal names in them; the others are recorded as SKIPPED, with the reason
-- in last_error, and never sent.
CREATE TABLE notification_settings (
    tenant_id              TEXT COLLATE "C" PRIMARY KEY,
    verified_email_domains TEXT[] NOT NULL,
    update_time            TIMESTAMPTZ NOT NULL
);
ALTER TABLE notification_settings ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON notification_settings TO numbers_service
    USING (tenant_id = current_setting('numbers.tenant', true)
           OR current_setting('numbers.tenant', true) = '*');
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_settings TO numbers_service;

ALTER TABLE notifications DROP CONSTRAINT notifications_state_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_state_check
    CHECK (state IN ('PENDING', 'SENT', 'FAILED', 'SKIPPED'));
