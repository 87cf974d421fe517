-- The audit trail is append-only: events are added, never changed or removed. (On PostgreSQL
-- the service's role is refused those privileges instead; see its migration 0007.)
CREATE TRIGGER audit_events_are_not_changed BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_are_not_removed BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
