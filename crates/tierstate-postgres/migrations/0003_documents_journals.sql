-- v3: documents (the state's head/version layout keyed by deployment, collection, key) and
-- hash-chained journals (a head per stream with the last hash and the truncation anchor; the
-- entries, with a unique index on idempotency keys and an index on event time).
CREATE TABLE ts_doc_head (
    deployment_id TEXT COLLATE "C" NOT NULL,
    collection TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 1),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, collection, key)
);
CREATE TABLE ts_doc_version (
    deployment_id TEXT COLLATE "C" NOT NULL,
    collection TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 1),
    checksum TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    body BYTEA NOT NULL,
    PRIMARY KEY (deployment_id, collection, key, version)
);
CREATE TABLE ts_journal_head (
    deployment_id TEXT COLLATE "C" NOT NULL,
    stream TEXT COLLATE "C" NOT NULL,
    last_seq BIGINT NOT NULL CHECK (last_seq >= 0),
    last_hash TEXT NOT NULL,
    last_commit_at BIGINT NOT NULL,
    base_seq BIGINT NOT NULL CHECK (base_seq >= 0),
    base_hash TEXT NOT NULL,
    PRIMARY KEY (deployment_id, stream)
);
CREATE TABLE ts_journal (
    deployment_id TEXT COLLATE "C" NOT NULL,
    stream TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL CHECK (seq >= 1),
    event_at BIGINT NOT NULL,
    commit_at BIGINT NOT NULL,
    idem_key TEXT,
    checksum TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    body BYTEA NOT NULL,
    PRIMARY KEY (deployment_id, stream, seq)
);
CREATE UNIQUE INDEX ts_journal_key ON ts_journal (deployment_id, stream, idem_key)
    WHERE idem_key IS NOT NULL;
CREATE INDEX ts_journal_event ON ts_journal (deployment_id, stream, event_at, seq);
