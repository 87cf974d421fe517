-- Retention: finished operations (with their provisioning jobs) and emails that are done with
-- (sent, failed or skipped) are deleted once older than their retention ([worker]
-- operation_retention_days, notification_retention_days), oldest first, in batches; these
-- indexes find them without reading the rest.
CREATE INDEX operations_finished ON operations (update_time)
    WHERE state IN ('SUCCEEDED', 'FAILED');
CREATE INDEX notifications_done ON notifications (create_time) WHERE state <> 'PENDING';
