-- A number is in one tenant's inventory at a time, whatever its type. Until now only provider
-- numbers (Calling Plan, Operator Connect) were held to that, so a tenant could take another
-- tenant's number as a Direct Routing number of its own. Numbers are compared whole: the
-- extensions of one main number are numbers of their own.
--
-- A database that already holds a number in two tenants cannot take the index: the upgrade
-- stops here and names the numbers, to be released in one of the tenants before upgrading.
DO $$
DECLARE
    shared text;
BEGIN
    SELECT string_agg(phone_number, ', ' ORDER BY phone_number) INTO shared
    FROM (SELECT phone_number FROM phone_numbers
          GROUP BY phone_number HAVING count(*) > 1 LIMIT 20) AS twice;
    IF shared IS NOT NULL THEN
        RAISE EXCEPTION 'numbers held by more than one tenant: %', shared
            USING HINT = 'release each of them in all but one tenant, then upgrade again';
    END IF;
END
$$;

DROP INDEX phone_numbers_provider_number_in_one_tenant;
CREATE UNIQUE INDEX phone_numbers_number_in_one_tenant ON phone_numbers (phone_number);
