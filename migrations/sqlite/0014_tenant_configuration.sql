-- A tenant's defaults for what requests leave unsaid (Set-CsPhoneNumberTenantConfiguration):
-- emails on assignment and on unassignment, and the block a removal puts on its numbers. No row
-- means the defaults of a tenant never configured (emails on, no block).
CREATE TABLE tenant_configurations (
    tenant_id                  TEXT PRIMARY KEY,
    assignment_email_enabled   INTEGER NOT NULL CHECK (assignment_email_enabled IN (0, 1)),
    unassignment_email_enabled INTEGER NOT NULL CHECK (unassignment_email_enabled IN (0, 1)),
    removal_block_days         INTEGER NOT NULL CHECK (removal_block_days BETWEEN 0 AND 365),
    removal_block_forever      INTEGER NOT NULL CHECK (removal_block_forever IN (0, 1)),
    version                    INTEGER NOT NULL,
    update_time                INTEGER NOT NULL,
    CHECK (NOT (removal_block_forever = 1 AND removal_block_days > 0))
);
