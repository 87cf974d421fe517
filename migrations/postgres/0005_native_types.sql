-- PostgreSQL's own types, in place of the portable ones of 0001-0004: boolean flags,
-- timestamptz times, text arrays for licences, countries and capabilities, jsonb for audit
-- snapshots and stored answers, uuid for the ids the service generates. Every row is converted
-- where it stands; nothing is dropped.
--
-- Times were microseconds since the Unix epoch; timestamptz keeps microseconds too, so the
-- conversion is exact.

-- Users ------------------------------------------------------------------------------------------

ALTER TABLE users DROP CONSTRAINT users_enterprise_voice_enabled_check;
ALTER TABLE users
    ALTER COLUMN enterprise_voice_enabled DROP DEFAULT,
    ALTER COLUMN enterprise_voice_enabled TYPE boolean USING enterprise_voice_enabled <> 0,
    ALTER COLUMN enterprise_voice_enabled SET DEFAULT false,
    ALTER COLUMN licenses TYPE text[]
        USING coalesce(string_to_array(nullif(licenses, ''), ','), '{}'),
    ALTER COLUMN create_time TYPE timestamptz
        USING timestamptz 'epoch' + create_time * interval '1 microsecond',
    ALTER COLUMN update_time TYPE timestamptz
        USING timestamptz 'epoch' + update_time * interval '1 microsecond';
ALTER TABLE users ADD CONSTRAINT users_known_licenses
    CHECK (licenses <@ ARRAY['PHONE_SYSTEM', 'CALLING_PLAN', 'PHONE_SYSTEM_VIRTUAL_USER']);
-- Counts the write transactions that locked the user: the store's lock of a user (and of the
-- numbers it holds, read in the same statement) compares it with what its snapshot saw, to
-- tell whether it waited for another writer (src/store/postgres/users.rs, lock_user_by!).
ALTER TABLE users ADD COLUMN locks bigint NOT NULL DEFAULT 0;

-- Emergency locations -----------------------------------------------------------------------------

ALTER TABLE emergency_locations
    ALTER COLUMN create_time TYPE timestamptz
        USING timestamptz 'epoch' + create_time * interval '1 microsecond';
-- Listings run oldest first, in a city, a country or both.
DROP INDEX emergency_locations_by_place;
CREATE INDEX emergency_locations_in_order ON emergency_locations (tenant_id, create_time, id);
CREATE INDEX emergency_locations_by_city ON emergency_locations (tenant_id, city_key, create_time, id);
CREATE INDEX emergency_locations_by_country ON emergency_locations (tenant_id, country, create_time, id);

-- Operations and provisioning jobs ----------------------------------------------------------------

ALTER TABLE provisioning_jobs DROP CONSTRAINT provisioning_jobs_tenant_id_operation_id_fkey;
ALTER TABLE operations
    ALTER COLUMN id TYPE uuid USING id::uuid,
    ALTER COLUMN create_time TYPE timestamptz
        USING timestamptz 'epoch' + create_time * interval '1 microsecond',
    ALTER COLUMN update_time TYPE timestamptz
        USING timestamptz 'epoch' + update_time * interval '1 microsecond';
ALTER TABLE provisioning_jobs
    ALTER COLUMN id TYPE uuid USING id::uuid,
    ALTER COLUMN operation_id TYPE uuid USING operation_id::uuid,
    ALTER COLUMN next_attempt_time TYPE timestamptz
        USING timestamptz 'epoch' + next_attempt_time * interval '1 microsecond',
    ALTER COLUMN lease_expires TYPE timestamptz
        USING timestamptz 'epoch' + lease_expires * interval '1 microsecond',
    ALTER COLUMN create_time TYPE timestamptz
        USING timestamptz 'epoch' + create_time * interval '1 microsecond',
    ALTER COLUMN update_time TYPE timestamptz
        USING timestamptz 'epoch' + update_time * interval '1 microsecond',
    ADD FOREIGN KEY (tenant_id, operation_id) REFERENCES operations (tenant_id, id);
-- Workers look only at unfinished jobs.
DROP INDEX provisioning_jobs_due;
CREATE INDEX provisioning_jobs_due ON provisioning_jobs (next_attempt_time)
    WHERE state IN ('PENDING', 'RUNNING');

-- Phone numbers -----------------------------------------------------------------------------------

ALTER TABLE phone_numbers
    DROP CONSTRAINT phone_numbers_location_update_supported_check,
    DROP CONSTRAINT phone_numbers_blocked_forever_check;
ALTER TABLE phone_numbers
    ALTER COLUMN capabilities TYPE text[] USING array_remove(ARRAY[
        CASE WHEN capabilities & 1 <> 0 THEN 'USER_ASSIGNMENT' END,
        CASE WHEN capabilities & 2 <> 0 THEN 'VOICE_APPLICATION_ASSIGNMENT' END,
        CASE WHEN capabilities & 4 <> 0 THEN 'CONFERENCE_ASSIGNMENT' END], NULL),
    ALTER COLUMN location_update_supported TYPE boolean USING location_update_supported <> 0,
    ALTER COLUMN blocked_until TYPE timestamptz
        USING timestamptz 'epoch' + blocked_until * interval '1 microsecond',
    ALTER COLUMN blocked_forever DROP DEFAULT,
    ALTER COLUMN blocked_forever TYPE boolean USING blocked_forever <> 0,
    ALTER COLUMN blocked_forever SET DEFAULT false,
    ALTER COLUMN operation_id TYPE uuid USING operation_id::uuid,
    ALTER COLUMN create_time TYPE timestamptz
        USING timestamptz 'epoch' + create_time * interval '1 microsecond',
    ALTER COLUMN update_time TYPE timestamptz
        USING timestamptz 'epoch' + update_time * interval '1 microsecond',
    -- Whom the number is assigned to (nobody, a user, a resource account), kept with the
    -- number so that listings by it walk an index in number order.
    ADD COLUMN assignment_status text;
UPDATE phone_numbers n SET assignment_status = CASE
    WHEN n.assigned_to IS NULL THEN 'UNASSIGNED'
    WHEN (SELECT u.kind FROM users u WHERE u.tenant_id = n.tenant_id AND u.id = n.assigned_to)
        = 'RESOURCE_ACCOUNT' THEN 'VOICE_APPLICATION_ASSIGNED'
    ELSE 'USER_ASSIGNED'
END;
ALTER TABLE phone_numbers
    ALTER COLUMN assignment_status SET NOT NULL,
    ADD CONSTRAINT phone_numbers_known_capabilities CHECK (capabilities <@ ARRAY[
        'USER_ASSIGNMENT', 'VOICE_APPLICATION_ASSIGNMENT', 'CONFERENCE_ASSIGNMENT']),
    ADD CONSTRAINT phone_numbers_assignment_status_matches_holder CHECK (
        assignment_status IN ('UNASSIGNED', 'USER_ASSIGNED', 'VOICE_APPLICATION_ASSIGNED')
        AND (assigned_to IS NULL) = (assignment_status = 'UNASSIGNED'));

-- At most one primary number per target, checked at the end of each statement rather than row
-- by row: a change that moves the primary from one number to another in one statement is
-- checked once both rows are written.
DROP INDEX phone_numbers_one_primary_per_target;
ALTER TABLE phone_numbers ADD CONSTRAINT phone_numbers_one_primary_per_target
    EXCLUDE USING btree (tenant_id WITH =, assigned_to WITH =)
    WHERE (assignment_category = 'PRIMARY') DEFERRABLE INITIALLY IMMEDIATE;

-- One index per ListPhoneNumbers filter, each ending in the number, so a page of any filter is
-- a walk along one index in number order, at any depth. A number prefix walks the primary key.
DROP INDEX phone_numbers_by_location;
CREATE INDEX phone_numbers_by_location ON phone_numbers (tenant_id, emergency_location_id, phone_number);
CREATE INDEX phone_numbers_by_type ON phone_numbers (tenant_id, number_type, phone_number);
CREATE INDEX phone_numbers_by_assignment_status ON phone_numbers (tenant_id, assignment_status, phone_number);
CREATE INDEX phone_numbers_by_activation_state ON phone_numbers (tenant_id, activation_state, phone_number);
CREATE INDEX phone_numbers_by_country ON phone_numbers (tenant_id, country, phone_number);
CREATE INDEX phone_numbers_by_operator ON phone_numbers (tenant_id, operator_id, phone_number);
CREATE INDEX phone_numbers_for_users ON phone_numbers (tenant_id, phone_number)
    WHERE capabilities @> '{USER_ASSIGNMENT}';
CREATE INDEX phone_numbers_for_voice_applications ON phone_numbers (tenant_id, phone_number)
    WHERE capabilities @> '{VOICE_APPLICATION_ASSIGNMENT}';
CREATE INDEX phone_numbers_for_conferences ON phone_numbers (tenant_id, phone_number)
    WHERE capabilities @> '{CONFERENCE_ASSIGNMENT}';

-- Operator consents, request ids, audit events, notifications -------------------------------------

ALTER TABLE operator_consents
    ALTER COLUMN countries TYPE text[]
        USING coalesce(string_to_array(nullif(countries, ''), ','), '{}'),
    ALTER COLUMN create_time TYPE timestamptz
        USING timestamptz 'epoch' + create_time * interval '1 microsecond';

-- A claimed request id has no answer until its transaction stores one.
ALTER TABLE request_ids
    ALTER COLUMN response DROP NOT NULL,
    ALTER COLUMN response TYPE jsonb USING nullif(response, '')::jsonb,
    ALTER COLUMN create_time TYPE timestamptz
        USING timestamptz 'epoch' + create_time * interval '1 microsecond';

ALTER TABLE audit_events
    ALTER COLUMN id TYPE uuid USING id::uuid,
    ALTER COLUMN time TYPE timestamptz
        USING timestamptz 'epoch' + time * interval '1 microsecond',
    ALTER COLUMN before TYPE jsonb USING before::jsonb,
    ALTER COLUMN after TYPE jsonb USING after::jsonb;

ALTER TABLE notifications
    ALTER COLUMN id TYPE uuid USING id::uuid,
    ALTER COLUMN create_time TYPE timestamptz
        USING timestamptz 'epoch' + create_time * interval '1 microsecond',
    ALTER COLUMN next_attempt_time TYPE timestamptz
        USING timestamptz 'epoch' + next_attempt_time * interval '1 microsecond',
    ALTER COLUMN lease_expires TYPE timestamptz
        USING timestamptz 'epoch' + lease_expires * interval '1 microsecond';
DROP INDEX notifications_due;
CREATE INDEX notifications_due ON notifications (next_attempt_time) WHERE state = 'PENDING';

-- Waking the workers ------------------------------------------------------------------------------

-- Work written by any replica wakes the workers of every replica at commit: each listens on
-- the channel `numbers_work`, whose payload names the queue ('jobs' or 'emails'). Notifications
-- of one transaction are delivered once, however many rows it wrote.
CREATE FUNCTION numbers_work_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('numbers_work', TG_ARGV[0]);
    RETURN NULL;
END
$$;
CREATE TRIGGER provisioning_jobs_wake_workers AFTER INSERT
    ON provisioning_jobs FOR EACH ROW WHEN (NEW.state IN ('PENDING', 'RUNNING'))
    EXECUTE FUNCTION numbers_work_written('jobs');
-- Emails are not urgent, and a worker woken once sends every email waiting before it sleeps
-- again; so an email wakes the workers only when it is the only one waiting. Busy replicas then
-- commit their emails without notifying (each NOTIFY takes a lock that commits queue on).
CREATE FUNCTION numbers_first_email_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM notifications WHERE state = 'PENDING'
                   AND (tenant_id, id) <> (NEW.tenant_id, NEW.id)) THEN
        PERFORM pg_notify('numbers_work', 'emails');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER notifications_wake_workers AFTER INSERT
    ON notifications FOR EACH ROW WHEN (NEW.state = 'PENDING')
    EXECUTE FUNCTION numbers_first_email_written();
