-- Emergency locations that can be fixed: places inside a location (a floor or a wing sharing
-- its civic address, as in the Teams LIS), details that change under an etag, and locations
-- that no number uses deleted.
--
-- A place is a location row whose `parent_id` names its location; numbers register with it
-- as with any location. Every existing location is a location of its own (no parent) at
-- version 1.
ALTER TABLE emergency_locations
    ADD COLUMN parent_id TEXT COLLATE "C",
    ADD COLUMN version BIGINT NOT NULL DEFAULT 1,
    ADD FOREIGN KEY (tenant_id, parent_id) REFERENCES emergency_locations (tenant_id, id);
CREATE INDEX emergency_locations_places
    ON emergency_locations (tenant_id, parent_id, create_time, id) WHERE parent_id IS NOT NULL;
-- A location's use, counted before it is deleted: numbers registered with it, and changes
-- still waiting for a provider that name it.
CREATE INDEX provisioning_jobs_by_location ON provisioning_jobs (tenant_id, emergency_location_id)
    WHERE state IN ('PENDING', 'RUNNING');
