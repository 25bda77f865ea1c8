-- v4: drops v2's index again. No query uses it (every time read goes through a deployment's
-- primary key), and it cost an index insert and a dead entry on every version stored or pruned.
DROP INDEX ts_version_updated_at;
