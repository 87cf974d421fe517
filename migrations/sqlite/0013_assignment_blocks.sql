-- Blocks from assignment as their own resource.
--
-- ListPhoneNumbers filters by block state: the few blocked numbers are found in number order
-- by an index of them alone. The listing repeats the condition word for word, so SQLite walks
-- that index.
CREATE INDEX phone_numbers_blocked ON phone_numbers (tenant_id, phone_number)
    WHERE blocked_forever = 1 OR blocked_until IS NOT NULL;
