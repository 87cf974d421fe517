-- A change stream for internal clients (WatchChanges), fed from the audit trail that every
-- change writes in its own transaction. Each event gets a position from one sequence, taken
-- in the change's last statement (after every row lock it takes, so two changes of one record
-- get their positions in the order they commit) while the change holds its tenant's gate, an
-- advisory lock, shared until its commit. A reader takes the gate exclusively for an instant:
-- every change of the tenant that holds a position by then has committed or rolled back, so
-- the reader reads up to the sequence's last value and loses nothing that commits later.
-- Events written before this release have no position (a stream starts from now or from a
-- resume token).
CREATE SEQUENCE change_positions;
GRANT USAGE, SELECT ON SEQUENCE change_positions TO numbers_service;

ALTER TABLE audit_events ADD COLUMN seq BIGINT;
CREATE INDEX audit_events_in_commit_order ON audit_events (tenant_id, seq) WHERE seq IS NOT NULL;
