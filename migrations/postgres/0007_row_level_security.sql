-- Isolation in the database: the service works as the role `numbers_service`, which owns
-- nothing, cannot bypass row-level security, and sees and writes only the rows of the tenant
-- its connection is scoped to (the setting `numbers.tenant`, which the store sets on every
-- connection it lends). A statement that forgot its tenant filter still sees one tenant.
-- The background workers, which serve every tenant, scope their connections to '*' (no tenant
-- id can be '*'). Migrations keep running as the owner of the tables, who is not subject to
-- the policies.
--
-- The audit trail is append-only for the service: it may read and add events, not change or
-- remove them.
--
-- Roles belong to the whole cluster: the role is created once and shared by every database
-- of the service on it (several may be migrated at once). The owner must be able to create it
-- (CREATEROLE) or a database administrator creates it beforehand:
--     CREATE ROLE numbers_service NOLOGIN; GRANT numbers_service TO <owner>;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'numbers_service') THEN
        BEGIN
            CREATE ROLE numbers_service NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created meanwhile by the migration of another database
        END;
    END IF;
    -- The owner becomes the role on each connection (`SET ROLE` at connection start-up).
    IF NOT pg_has_role(current_user, 'numbers_service', 'MEMBER') THEN
        BEGIN
            EXECUTE format('GRANT numbers_service TO %I', current_user);
        EXCEPTION WHEN unique_violation THEN
            NULL;
        END;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO numbers_service', current_schema());
END
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON
    users, emergency_locations, phone_numbers, operator_consents, request_ids, notifications,
    operations, provisioning_jobs
    TO numbers_service;
GRANT SELECT, INSERT ON audit_events, server_secrets TO numbers_service;

-- One policy per tenant table: the connection's tenant, or every tenant for the workers. An
-- unset scope matches nothing.
DO $$
DECLARE
    tenant_table text;
BEGIN
    FOREACH tenant_table IN ARRAY ARRAY['users', 'emergency_locations', 'phone_numbers',
        'operator_consents', 'request_ids', 'audit_events', 'notifications', 'operations',
        'provisioning_jobs']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', tenant_table);
        EXECUTE format(
            'CREATE POLICY tenant_scope ON %I TO numbers_service '
            'USING (tenant_id = current_setting(''numbers.tenant'', true) '
            '       OR current_setting(''numbers.tenant'', true) = ''*'')',
            tenant_table);
    END LOOP;
END
$$;

-- A number is in one tenant's inventory at a time, so a tenant's acquisition asks which of
-- the numbers it looks at any tenant holds: this answers that, and nothing more about the
-- holders, across the policies.
CREATE FUNCTION numbers_taken(candidates text[]) RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER
    AS $$ SELECT phone_number FROM phone_numbers WHERE phone_number = ANY(candidates) $$;

-- The first email waiting wakes the mail workers (0005): waiting in any tenant.
ALTER FUNCTION numbers_first_email_written() SECURITY DEFINER;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION numbers_taken(text[]) SET search_path = %I, pg_temp',
                   current_schema());
    EXECUTE format('ALTER FUNCTION numbers_first_email_written() SET search_path = %I, pg_temp',
                   current_schema());
END
$$;
REVOKE ALL ON FUNCTION numbers_taken(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION numbers_taken(text[]) TO numbers_service;
