-- The users the pgbench transactions assign numbers to, as UpsertUser stores them; psql runs
-- it with -v total=N after the migrations.
CREATE SEQUENCE ceiling_user;
GRANT USAGE ON SEQUENCE ceiling_user TO numbers_service;
INSERT INTO users (tenant_id, id, user_principal_name, upn_key, sip_address, sip_key,
    display_name, display_name_key, usage_location, kind, licenses, version, create_time,
    update_time)
SELECT 'ceiling', gen_random_uuid()::text, 'u' || i || '@ceiling.example',
    'u' || i || '@ceiling.example', 'sip:u' || i || '@ceiling.example',
    'sip:u' || i || '@ceiling.example', 'Ceiling user', 'ceiling user', 'US', 'USER',
    '{PHONE_SYSTEM,CALLING_PLAN}', 1, now(), now()
FROM generate_series(1, :total) AS i;
ANALYZE;
