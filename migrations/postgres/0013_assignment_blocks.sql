-- Blocks from assignment as their own resource.
--
-- ListPhoneNumbers filters by block state: the few blocked numbers are found in number order
-- by an index of them alone. The listing repeats the condition word for word.
CREATE INDEX phone_numbers_blocked ON phone_numbers (tenant_id, phone_number)
    WHERE blocked_forever OR blocked_until IS NOT NULL;
