-- The foundation: the directory of PSTN targets, emergency locations, the phone number
-- inventory, operator consents and request ids.
--
-- Portable on purpose: the same SQL runs on PostgreSQL and SQLite (see docs/architecture.md),
-- so columns use TEXT, BIGINT and BYTEA only. Times are microseconds since the Unix epoch; flags
-- are 0 or 1. Key columns use the "C" collation so both databases order them the same way.

CREATE TABLE users (
    tenant_id                TEXT COLLATE "C" NOT NULL,
    id                       TEXT COLLATE "C" NOT NULL,
    user_principal_name      TEXT NOT NULL,
    upn_key                  TEXT COLLATE "C" NOT NULL, -- lower-cased user principal name
    sip_address              TEXT NOT NULL,
    sip_key                  TEXT COLLATE "C" NOT NULL, -- lower-cased SIP address
    display_name             TEXT NOT NULL,
    display_name_key         TEXT COLLATE "C" NOT NULL, -- lower-cased display name
    usage_location           TEXT,
    kind                     TEXT NOT NULL CHECK (kind IN ('USER', 'RESOURCE_ACCOUNT')),
    licenses                 TEXT NOT NULL,
    enterprise_voice_enabled BIGINT NOT NULL DEFAULT 0 CHECK (enterprise_voice_enabled IN (0, 1)),
    on_premises_line_uri     TEXT,
    version                  BIGINT NOT NULL,
    create_time              BIGINT NOT NULL,
    update_time              BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT users_upn_unique UNIQUE (tenant_id, upn_key)
);
CREATE INDEX users_by_display_name ON users (tenant_id, display_name_key);
CREATE INDEX users_by_sip_address ON users (tenant_id, sip_key);

CREATE TABLE emergency_locations (
    tenant_id           TEXT COLLATE "C" NOT NULL,
    id                  TEXT COLLATE "C" NOT NULL,
    company_name        TEXT NOT NULL,
    house_number        TEXT NOT NULL,
    house_number_suffix TEXT NOT NULL,
    pre_directional     TEXT NOT NULL,
    street_name         TEXT NOT NULL,
    street_suffix       TEXT NOT NULL,
    post_directional    TEXT NOT NULL,
    city                TEXT NOT NULL,
    city_key            TEXT COLLATE "C" NOT NULL, -- lower-cased city
    state_or_province   TEXT NOT NULL,
    postal_code         TEXT NOT NULL,
    country             TEXT COLLATE "C" NOT NULL,
    description         TEXT NOT NULL,
    validation_status   TEXT NOT NULL CHECK (validation_status IN ('NOT_VALIDATED', 'VALIDATED')),
    create_time         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX emergency_locations_by_place ON emergency_locations (tenant_id, country, city_key);

CREATE TABLE phone_numbers (
    tenant_id                 TEXT COLLATE "C" NOT NULL,
    phone_number              TEXT COLLATE "C" NOT NULL, -- E.164 with +, then ;ext= if any
    base_number               TEXT COLLATE "C" NOT NULL, -- the number without extension
    number_type               TEXT NOT NULL
        CHECK (number_type IN ('CALLING_PLAN', 'OPERATOR_CONNECT', 'DIRECT_ROUTING')),
    operator_id               TEXT COLLATE "C",
    country                   TEXT COLLATE "C" NOT NULL,
    city                      TEXT NOT NULL,
    capabilities              BIGINT NOT NULL, -- bit mask: 1 user, 2 voice application, 4 conference
    assigned_to               TEXT COLLATE "C",
    assignment_category       TEXT CHECK (assignment_category IN ('PRIMARY', 'PRIVATE', 'ALTERNATE')),
    activation_state          TEXT NOT NULL CHECK (activation_state IN
        ('ACTIVATED', 'ASSIGNMENT_PENDING', 'ASSIGNMENT_FAILED', 'UPDATE_PENDING', 'UPDATE_FAILED')),
    emergency_location_id     TEXT COLLATE "C",
    location_update_supported BIGINT NOT NULL CHECK (location_update_supported IN (0, 1)),
    blocked_until             BIGINT,
    blocked_forever           BIGINT NOT NULL DEFAULT 0 CHECK (blocked_forever IN (0, 1)),
    version                   BIGINT NOT NULL,
    create_time               BIGINT NOT NULL,
    update_time               BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, phone_number),
    FOREIGN KEY (tenant_id, assigned_to) REFERENCES users (tenant_id, id),
    FOREIGN KEY (tenant_id, emergency_location_id) REFERENCES emergency_locations (tenant_id, id),
    CONSTRAINT phone_numbers_holder_has_category
        CHECK ((assigned_to IS NULL) = (assignment_category IS NULL)),
    CONSTRAINT phone_numbers_operator_numbers_name_operator
        CHECK ((number_type = 'OPERATOR_CONNECT') = (operator_id IS NOT NULL))
);
-- At most one PRIMARY number per target.
CREATE UNIQUE INDEX phone_numbers_one_primary_per_target
    ON phone_numbers (tenant_id, assigned_to) WHERE assignment_category = 'PRIMARY';
CREATE INDEX phone_numbers_by_holder ON phone_numbers (tenant_id, assigned_to, phone_number);
CREATE INDEX phone_numbers_by_location ON phone_numbers (tenant_id, emergency_location_id);
CREATE INDEX phone_numbers_by_base ON phone_numbers (tenant_id, base_number);

CREATE TABLE operator_consents (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    operator_id TEXT COLLATE "C" NOT NULL,
    countries   TEXT NOT NULL, -- comma-separated ISO 3166-1 alpha-2 codes
    create_time BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, operator_id)
);

-- Idempotency of mutations (AIP-155): one row per request id, written in the same transaction
-- as the change it made, holding the answer that a retry gets back.
CREATE TABLE request_ids (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    request_id  TEXT COLLATE "C" NOT NULL,
    method      TEXT NOT NULL,
    fingerprint BYTEA NOT NULL, -- the request, so a reuse for another request is refused
    response    TEXT NOT NULL,  -- the first answer, as JSON
    create_time BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, request_id)
);
