-- A tenant's defaults for what requests leave unsaid (Set-CsPhoneNumberTenantConfiguration):
-- emails on assignment and on unassignment, and the block a removal puts on its numbers. No row
-- means the defaults of a tenant never configured (emails on, no block).
CREATE TABLE tenant_configurations (
    tenant_id                  TEXT COLLATE "C" PRIMARY KEY,
    assignment_email_enabled   BOOLEAN NOT NULL,
    unassignment_email_enabled BOOLEAN NOT NULL,
    removal_block_days         SMALLINT NOT NULL CHECK (removal_block_days BETWEEN 0 AND 365),
    removal_block_forever      BOOLEAN NOT NULL,
    version                    BIGINT NOT NULL,
    update_time                TIMESTAMPTZ NOT NULL,
    CHECK (NOT (removal_block_forever AND removal_block_days > 0))
);
ALTER TABLE tenant_configurations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON tenant_configurations TO numbers_service
    USING (tenant_id = current_setting('numbers.tenant', true)
           OR current_setting('numbers.tenant', true) = '*');
GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_configurations TO numbers_service;
