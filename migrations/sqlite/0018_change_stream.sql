-- A change stream for internal clients (WatchChanges), fed from the audit trail that every
-- change writes in its own transaction. SQLite has one writer, so the events' row ids follow
-- the commit order (and events are never deleted, so no id is reused): the stream reads a
-- tenant's events by row id.
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id);
