-- A change stream for internal clients (WatchChanges), fed from the audit trail that every
-- change writes in its own transaction. Each event gets the next number of its tenant's
-- counter, taken at the end of the change's transaction and held until its commit, so the
-- numbers follow the commit order with no gap: a reader that has seen event n has seen every
-- event before it. Events written before this release have none (the stream starts from now
-- or from a resume token).
CREATE TABLE change_sequences (
    tenant_id TEXT COLLATE "C" PRIMARY KEY,
    last      BIGINT NOT NULL
);
ALTER TABLE change_sequences ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON change_sequences TO numbers_service
    USING (tenant_id = current_setting('numbers.tenant', true)
           OR current_setting('numbers.tenant', true) = '*');
GRANT SELECT, INSERT, UPDATE, DELETE ON change_sequences TO numbers_service;

ALTER TABLE audit_events ADD COLUMN seq BIGINT;
CREATE INDEX audit_events_in_commit_order ON audit_events (tenant_id, seq) WHERE seq IS NOT NULL;
