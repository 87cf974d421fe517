-- AssignPhoneNumber as the PostgreSQL store runs it (src/store/postgres), statement for
-- statement: a fresh Direct Routing number to a fresh user, with a request id and an email,
-- as `numbers bench` does it. Keep it in step with the store's SQL.
--
-- The service knows its user and number from the request; here the claim of the request id
-- draws them from a sequence instead, in the same round trip. pgbench runs it with
-- -D tenant=ceiling.
BEGIN;
-- Claim the request id (requests.rs).
INSERT INTO request_ids (tenant_id, request_id, method, fingerprint, create_time)
VALUES (:tenant, 'ceiling-' || nextval('ceiling_user'), 'AssignPhoneNumber',
    '\x0a0c2b3134323532303030303030', now())
ON CONFLICT (tenant_id, request_id) DO NOTHING
RETURNING request_id, 'u' || substr(request_id, 9) || '@ceiling.example' AS upn,
    '+1206' || lpad(substr(request_id, 9), 7, '0') AS number, gen_random_uuid() AS op_id \gset
-- Lock the user and read the numbers it holds (users.rs, lock_user_by!).
WITH target AS (UPDATE users SET locks = locks + 1 WHERE tenant_id = :tenant AND id =
    (SELECT id FROM users WHERE tenant_id = :tenant AND upn_key = :upn
    ORDER BY create_time, id LIMIT 1) RETURNING *),
held AS (SELECT n.* FROM phone_numbers n
    JOIN target t ON n.tenant_id = t.tenant_id AND n.assigned_to = t.id)
SELECT u.id, u.user_principal_name, u.sip_address, u.display_name, u.usage_location, u.kind,
    u.licenses, u.enterprise_voice_enabled, u.on_premises_line_uri, u.version, u.create_time,
    u.update_time, '{}'::text[] AS phone_numbers,
    u.locks, s.locks AS snapshot_locks, s.version AS snapshot_version,
    h.phone_number AS h_phone_number, h.base_number AS h_base_number, h.country AS h_country,
    h.number_type AS h_number_type, h.operator_id AS h_operator_id, h.city AS h_city,
    h.capabilities AS h_capabilities, h.assigned_to AS h_assigned_to,
    u.user_principal_name AS h_holder_upn, u.kind AS h_holder_kind,
    h.assignment_category AS h_assignment_category, h.activation_state AS h_activation_state,
    h.emergency_location_id AS h_emergency_location_id,
    h.location_update_supported AS h_location_update_supported,
    h.blocked_until AS h_blocked_until, h.blocked_forever AS h_blocked_forever,
    h.operation_id AS h_operation_id, h.version AS h_version, h.create_time AS h_create_time,
    h.update_time AS h_update_time, h.tags AS h_tags
FROM target u LEFT JOIN users s ON s.tenant_id = u.tenant_id AND s.id = u.id
LEFT JOIN held h ON true
ORDER BY CASE h.assignment_category WHEN 'PRIMARY' THEN 0 ELSE 1 END, h.phone_number \gset u_
-- Lock the number and the numbers on its base number (numbers.rs, lock_numbers_on_base).
SELECT n.phone_number, n.base_number, n.country, n.number_type, n.operator_id, n.city,
    n.capabilities, n.assigned_to, u.user_principal_name AS holder_upn, u.kind AS holder_kind,
    n.assignment_category, n.activation_state, n.emergency_location_id,
    n.location_update_supported, n.blocked_until, n.blocked_forever, n.operation_id, n.version,
    n.create_time, n.update_time, n.tags
FROM phone_numbers n LEFT JOIN users u ON u.tenant_id = n.tenant_id AND u.id = n.assigned_to
WHERE n.tenant_id = :tenant AND n.phone_number IN (SELECT phone_number FROM phone_numbers
    WHERE tenant_id = :tenant AND base_number = :number UNION ALL SELECT NULL::text)
ORDER BY n.phone_number FOR UPDATE OF n;
-- The Direct Routing number enters the inventory (numbers.rs, insert_number_unless!).
INSERT INTO phone_numbers (tenant_id, phone_number, base_number, number_type, operator_id,
    country, city, capabilities, assigned_to, assignment_category, assignment_status,
    activation_state, emergency_location_id, location_update_supported, blocked_until,
    blocked_forever, operation_id, version, create_time, update_time)
SELECT :tenant, :number, :number, 'DIRECT_ROUTING', NULL, 'US', '',
    '{USER_ASSIGNMENT,VOICE_APPLICATION_ASSIGNMENT,CONFERENCE_ASSIGNMENT}', NULL, NULL,
    'UNASSIGNED', 'ACTIVATED', NULL, true, NULL, false, NULL, 1, now(), now()
WHERE NOT EXISTS (SELECT 1 FROM phone_numbers WHERE phone_number = :number)
ON CONFLICT (phone_number) DO NOTHING;
-- Everything the assignment changes, in one statement (changes.rs, WRITE_CHANGES).
WITH numbers AS (
    UPDATE phone_numbers SET
        assigned_to = (ARRAY[:u_id]::text[])[array_position(ARRAY[:number]::text[], phone_number)],
        assignment_category = (ARRAY['PRIMARY']::text[])[array_position(ARRAY[:number]::text[], phone_number)],
        assignment_status = (ARRAY['USER_ASSIGNED']::text[])[array_position(ARRAY[:number]::text[], phone_number)],
        activation_state = (ARRAY['ACTIVATED']::text[])[array_position(ARRAY[:number]::text[], phone_number)],
        emergency_location_id = (ARRAY[NULL]::text[])[array_position(ARRAY[:number]::text[], phone_number)],
        location_update_supported = (ARRAY[true]::boolean[])[array_position(ARRAY[:number]::text[], phone_number)],
        capabilities = string_to_array((ARRAY['USER_ASSIGNMENT,VOICE_APPLICATION_ASSIGNMENT,CONFERENCE_ASSIGNMENT']::text[])[array_position(ARRAY[:number]::text[], phone_number)], ','),
        city = (ARRAY['']::text[])[array_position(ARRAY[:number]::text[], phone_number)],
        blocked_until = (ARRAY[NULL]::timestamptz[])[array_position(ARRAY[:number]::text[], phone_number)],
        blocked_forever = (ARRAY[false]::boolean[])[array_position(ARRAY[:number]::text[], phone_number)],
        operation_id = (ARRAY[:op_id]::uuid[])[array_position(ARRAY[:number]::text[], phone_number)],
        version = (ARRAY[2]::bigint[])[array_position(ARRAY[:number]::text[], phone_number)],
        update_time = (ARRAY[now()]::timestamptz[])[array_position(ARRAY[:number]::text[], phone_number)]
    WHERE tenant_id = :tenant AND phone_number = ANY(ARRAY[:number]::text[])
        AND version = (ARRAY[2]::bigint[])[array_position(ARRAY[:number]::text[], phone_number)] - 1
    RETURNING 1
), users AS (
    UPDATE users SET
        enterprise_voice_enabled = (ARRAY[true]::boolean[])[array_position(ARRAY[:u_id]::text[], id)],
        version = (ARRAY[:u_version + 1]::bigint[])[array_position(ARRAY[:u_id]::text[], id)],
        update_time = (ARRAY[now()]::timestamptz[])[array_position(ARRAY[:u_id]::text[], id)]
    WHERE tenant_id = :tenant AND id = ANY(ARRAY[:u_id]::text[])
        AND version = (ARRAY[:u_version + 1]::bigint[])[array_position(ARRAY[:u_id]::text[], id)] - 1
    RETURNING 1
), operation AS (
    INSERT INTO operations (tenant_id, id, kind, state, error, request_id, actor, create_time,
        update_time)
    SELECT :tenant, o.id, o.kind, o.state, o.error, o.request_id, o.actor, o.create_time,
        o.create_time
    FROM unnest(ARRAY[:op_id]::uuid[], ARRAY['ASSIGN_PHONE_NUMBER']::text[],
        ARRAY['SUCCEEDED']::text[], ARRAY[NULL]::text[], ARRAY[:request_id]::text[],
        ARRAY['ceiling']::text[], ARRAY[now()]::timestamptz[])
        AS o(id, kind, state, error, request_id, actor, create_time)
), jobs AS (
    INSERT INTO provisioning_jobs (id, tenant_id, operation_id, phone_number, action,
        provider_id, target_id, emergency_location_id, previous_location_id, state, ticket,
        reason, attempts, failures, next_attempt_time, create_time, update_time)
    SELECT j.id, :tenant, j.operation_id, j.phone_number, j.action, j.provider_id, j.target_id,
        j.emergency_location_id, j.previous_location_id, j.state, j.ticket, j.reason,
        j.attempts, j.failures, j.create_time, j.create_time, j.create_time
    FROM unnest(ARRAY[gen_random_uuid()]::uuid[], ARRAY[:op_id]::uuid[],
        ARRAY[:number]::text[], ARRAY['ACTIVATE']::text[], ARRAY['direct-routing']::text[],
        ARRAY[:u_id]::text[], ARRAY[NULL]::text[], ARRAY[NULL]::text[],
        ARRAY['SUCCEEDED']::text[], ARRAY[NULL]::text[], ARRAY[NULL]::text[], ARRAY[1]::bigint[],
        ARRAY[0]::bigint[], ARRAY[now()]::timestamptz[])
        AS j(id, operation_id, phone_number, action, provider_id, target_id,
            emergency_location_id, previous_location_id, state, ticket, reason, attempts,
            failures, create_time)
), sequenced AS (
    -- The event's position in the change stream, under the tenant's gate (held shared).
    SELECT nextval('change_positions') AS position
    FROM (SELECT pg_advisory_xact_lock_shared(7301, hashtext(:tenant))) AS gate
), audit AS (
    INSERT INTO audit_events (tenant_id, id, time, actor, action, phone_number, user_id,
        request_id, before, after, seq)
    SELECT :tenant, e.*, (SELECT position FROM sequenced) FROM unnest(ARRAY[gen_random_uuid()]::uuid[], ARRAY[now()]::timestamptz[],
        ARRAY['ceiling']::text[], ARRAY['ASSIGN_PHONE_NUMBER']::text[], ARRAY[:number::text]::text[],
        ARRAY[:u_id::text]::text[], ARRAY[:request_id::text]::text[], ARRAY[NULL]::jsonb[],
        ARRAY[jsonb_build_object('phoneNumber', :number::text, 'numberType', 'DIRECT_ROUTING',
            'operatorId', NULL, 'capabilities', jsonb_build_array('USER_ASSIGNMENT',
            'VOICE_APPLICATION_ASSIGNMENT', 'CONFERENCE_ASSIGNMENT'), 'assignedTo', :u_id::text,
            'assignedToUserPrincipalName', :upn::text, 'assignmentCategory', 'PRIMARY',
            'activationState', 'ACTIVATED', 'emergencyLocationId', NULL,
            'locationUpdateSupported', true, 'operationId', :op_id::text, 'tags', '[]'::jsonb,
            'assignmentBlocked', 'NOT_BLOCKED')]::jsonb[])
        AS e(id, time, actor, action, phone_number, user_id, request_id, before, after)
), emails AS (
    INSERT INTO notifications (tenant_id, id, recipient, subject, body, phone_number,
        create_time, next_attempt_time)
    SELECT :tenant, m.id, m.recipient, m.subject, m.body, m.phone_number, m.create_time,
        m.create_time
    FROM unnest(ARRAY[gen_random_uuid()]::uuid[], ARRAY[:upn::text]::text[],
        ARRAY['Your phone number is ' || :number::text]::text[],
        ARRAY['Hello ' || :upn::text || ', The phone number ' || :number::text || ' has been assigned to you. People can now call you on it, and it is shown when you call.']::text[],
        ARRAY[:number::text]::text[], ARRAY[now()]::timestamptz[])
        AS m(id, recipient, subject, body, phone_number, create_time)
), answer AS (
    UPDATE request_ids SET response = jsonb_build_object('number', jsonb_build_object(
        'number', jsonb_build_object('base', :number::text, 'extension', NULL, 'country', 'US'),
        'number_type', 'DIRECT_ROUTING', 'operator_id', NULL, 'city', '',
        'capabilities', jsonb_build_array('USER_ASSIGNMENT', 'VOICE_APPLICATION_ASSIGNMENT',
            'CONFERENCE_ASSIGNMENT'),
        'assignment', jsonb_build_object('target_id', :u_id::text, 'target_user_principal_name', :upn::text,
            'target_kind', 'USER', 'category', 'PRIMARY'),
        'activation_state', 'ACTIVATED', 'emergency_location_id', NULL,
        'location_update_supported', true, 'block', 'None', 'operation_id', :op_id::text,
        'version', 2, 'create_time', now(), 'update_time', now()),
        'user', jsonb_build_object('id', :u_id::text, 'user_principal_name', :upn::text,
            'sip_address', 'sip:' || :upn::text, 'display_name', 'Ceiling user', 'usage_location', 'US',
            'kind', 'USER', 'licenses', jsonb_build_array('PHONE_SYSTEM', 'CALLING_PLAN'),
            'enterprise_voice_enabled', true, 'on_premises_line_uri', NULL,
            'phone_numbers', jsonb_build_array(:number::text), 'version', 2,
            'create_time', now(), 'update_time', now()),
        'operation', jsonb_build_object('id', :op_id::text, 'kind', 'ASSIGN_PHONE_NUMBER',
            'state', 'SUCCEEDED', 'error', NULL, 'steps', jsonb_build_array(jsonb_build_object(
                'phone_number', :number::text, 'action', 'ACTIVATE', 'provider_id', 'direct-routing',
                'state', 'SUCCEEDED', 'reason', NULL, 'attempts', 1)),
            'create_time', now(), 'update_time', now()))
    WHERE tenant_id = :tenant AND request_id = :request_id::text
)
SELECT (SELECT count(*) FROM numbers) AS numbers, (SELECT count(*) FROM users) AS users;
COMMIT;
