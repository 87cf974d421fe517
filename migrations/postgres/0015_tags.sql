-- Tags on numbers (Set-CsPhoneNumberTag), and more filters of ListPhoneNumbers.
--
-- A number's tags are read with it from its own row (`tags`, as first written, ordered by key),
-- so no read of a number costs more; `phone_number_tags` has a row per tag of a number, for the
-- tag filter to walk in number order; `tags` keeps the spelling each tag was first written
-- with. Tags change only through the tag calls, which write all three in one transaction.
ALTER TABLE phone_numbers ADD COLUMN tags TEXT[] NOT NULL DEFAULT '{}';

CREATE TABLE tags (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    tag_key     TEXT COLLATE "C" NOT NULL, -- the tag lower-cased
    name        TEXT NOT NULL,             -- as first written
    create_time TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, tag_key)
);

CREATE TABLE phone_number_tags (
    tenant_id    TEXT COLLATE "C" NOT NULL,
    tag_key      TEXT COLLATE "C" NOT NULL,
    phone_number TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant_id, tag_key, phone_number),
    FOREIGN KEY (tenant_id, tag_key) REFERENCES tags (tenant_id, tag_key),
    FOREIGN KEY (tenant_id, phone_number) REFERENCES phone_numbers (tenant_id, phone_number)
        ON DELETE CASCADE
);
CREATE INDEX phone_number_tags_of_number ON phone_number_tags (tenant_id, phone_number);

ALTER TABLE tags ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON tags TO numbers_service
    USING (tenant_id = current_setting('numbers.tenant', true)
           OR current_setting('numbers.tenant', true) = '*');
GRANT SELECT, INSERT, UPDATE, DELETE ON tags TO numbers_service;
ALTER TABLE phone_number_tags ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON phone_number_tags TO numbers_service
    USING (tenant_id = current_setting('numbers.tenant', true)
           OR current_setting('numbers.tenant', true) = '*');
GRANT SELECT, INSERT, UPDATE, DELETE ON phone_number_tags TO numbers_service;

-- The filters by role and by city walk indexes in number order, like the others.
CREATE INDEX phone_numbers_by_category
    ON phone_numbers (tenant_id, assignment_category, phone_number);
CREATE INDEX phone_numbers_by_city ON phone_numbers (tenant_id, lower(city), phone_number);
