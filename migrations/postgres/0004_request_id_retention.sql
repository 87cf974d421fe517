-- Request ids are kept for a retention period ([worker] request_id_retention_hours); the
-- housekeeping task deletes older ones by their creation time.
CREATE INDEX request_ids_by_create_time ON request_ids (create_time);
