-- A number is in one tenant's inventory at a time, whatever its type. Until now only provider
-- numbers (Calling Plan, Operator Connect) were held to that, so a tenant could take another
-- tenant's number as a Direct Routing number of its own. Numbers are compared whole: the
-- extensions of one main number are numbers of their own.
--
-- A database that already holds a number in two tenants cannot take the index ("UNIQUE
-- constraint failed: phone_numbers.phone_number"): release the number in all but one tenant,
-- then upgrade again.
DROP INDEX phone_numbers_provider_number_in_one_tenant;
CREATE UNIQUE INDEX phone_numbers_number_in_one_tenant ON phone_numbers (phone_number);

-- Secrets the service keeps, generated on first start: the key that signs page tokens, so a
-- token is only good for the tenant and query it was made for.
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
