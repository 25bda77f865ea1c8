-- tierstate PostgreSQL schema, version 1.
-- ts_head: one row per deployment, the CAS point. ts_version: every retained version with the
-- exact canonical JSON bytes its SHA-256 checksum covers (BYTEA, never JSONB: JSONB reorders keys).
-- COLLATE "C" gives byte order for listing, whatever the database's default collation.
CREATE TABLE ts_head (
    deployment_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    version BIGINT NOT NULL CHECK (version >= 1),
    created_at BIGINT NOT NULL
);

CREATE TABLE ts_version (
    deployment_id TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 1),
    schema_version INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    body BYTEA NOT NULL,
    PRIMARY KEY (deployment_id, version)
);
