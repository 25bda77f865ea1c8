-- v2: an index on ts_version(updated_at), for time-range history queries and audits.
CREATE INDEX ts_version_updated_at ON ts_version (updated_at);
