-- Lists in SQLite's own list type, JSON arrays, in place of comma-separated text and a bit
-- mask; the assignment status kept with each number; and an index for every filter of the
-- phone number listing. Every row is converted where it stands; nothing is dropped.

UPDATE users SET licenses = CASE licenses
    WHEN '' THEN '[]'
    ELSE '["' || replace(licenses, ',', '","') || '"]'
END;

UPDATE operator_consents SET countries = CASE countries
    WHEN '' THEN '[]'
    ELSE '["' || replace(countries, ',', '","') || '"]'
END;

ALTER TABLE phone_numbers ADD COLUMN capability_list TEXT NOT NULL DEFAULT '[]';
UPDATE phone_numbers SET capability_list = (
    SELECT json_group_array(name) FROM (
        SELECT 1 AS bit, 'USER_ASSIGNMENT' AS name
        UNION ALL SELECT 2, 'VOICE_APPLICATION_ASSIGNMENT'
        UNION ALL SELECT 4, 'CONFERENCE_ASSIGNMENT'
        ORDER BY bit
    ) WHERE phone_numbers.capabilities & bit <> 0
);
ALTER TABLE phone_numbers DROP COLUMN capabilities;
ALTER TABLE phone_numbers RENAME COLUMN capability_list TO capabilities;

-- Whom the number is assigned to (nobody, a user, a resource account), kept with the number so
-- that listings by it walk an index in number order.
ALTER TABLE phone_numbers ADD COLUMN assignment_status TEXT NOT NULL DEFAULT 'UNASSIGNED';
UPDATE phone_numbers SET assignment_status = CASE
    WHEN assigned_to IS NULL THEN 'UNASSIGNED'
    WHEN (SELECT u.kind FROM users u
          WHERE u.tenant_id = phone_numbers.tenant_id AND u.id = phone_numbers.assigned_to)
        = 'RESOURCE_ACCOUNT' THEN 'VOICE_APPLICATION_ASSIGNED'
    ELSE 'USER_ASSIGNED'
END;

-- One index per ListPhoneNumbers filter, each ending in the number (see the PostgreSQL twin).
DROP INDEX phone_numbers_by_location;
CREATE INDEX phone_numbers_by_location ON phone_numbers (tenant_id, emergency_location_id, phone_number);
CREATE INDEX phone_numbers_by_type ON phone_numbers (tenant_id, number_type, phone_number);
CREATE INDEX phone_numbers_by_assignment_status ON phone_numbers (tenant_id, assignment_status, phone_number);
CREATE INDEX phone_numbers_by_activation_state ON phone_numbers (tenant_id, activation_state, phone_number);
CREATE INDEX phone_numbers_by_country ON phone_numbers (tenant_id, country, phone_number);
CREATE INDEX phone_numbers_by_operator ON phone_numbers (tenant_id, operator_id, phone_number);
CREATE INDEX phone_numbers_for_users ON phone_numbers (tenant_id, phone_number)
    WHERE capabilities LIKE '%"USER_ASSIGNMENT"%';
CREATE INDEX phone_numbers_for_voice_applications ON phone_numbers (tenant_id, phone_number)
    WHERE capabilities LIKE '%"VOICE_APPLICATION_ASSIGNMENT"%';
CREATE INDEX phone_numbers_for_conferences ON phone_numbers (tenant_id, phone_number)
    WHERE capabilities LIKE '%"CONFERENCE_ASSIGNMENT"%';

DROP INDEX emergency_locations_by_place;
CREATE INDEX emergency_locations_in_order ON emergency_locations (tenant_id, create_time, id);
CREATE INDEX emergency_locations_by_city ON emergency_locations (tenant_id, city_key, create_time, id);
CREATE INDEX emergency_locations_by_country ON emergency_locations (tenant_id, country, create_time, id);

DROP INDEX provisioning_jobs_due;
CREATE INDEX provisioning_jobs_due ON provisioning_jobs (next_attempt_time)
    WHERE state IN ('PENDING', 'RUNNING');
DROP INDEX notifications_due;
CREATE INDEX notifications_due ON notifications (next_attempt_time) WHERE state = 'PENDING';
