-- GetPhoneNumber as the PostgreSQL store runs it (numbers.rs, get_number): one statement, no
-- transaction around it, on numbers the assign run assigned. pgbench runs it with
-- -D tenant=ceiling -D total=N.
\set i random(1, :total)
SELECT n.phone_number, n.base_number, n.country, n.number_type, n.operator_id, n.city,
    n.capabilities, n.assigned_to, u.user_principal_name AS holder_upn, u.kind AS holder_kind,
    n.assignment_category, n.activation_state, n.emergency_location_id,
    n.location_update_supported, n.blocked_until, n.blocked_forever, n.operation_id, n.version,
    n.create_time, n.update_time, n.tags
FROM phone_numbers n LEFT JOIN users u ON u.tenant_id = n.tenant_id AND u.id = n.assigned_to
WHERE n.tenant_id = :tenant AND n.phone_number = '+1206' || lpad(:i::text, 7, '0');
