-- pyrogram_storage.kv.SQLiteKV, version 1: one table holds the keys of every namespace.
-- "{table}" stands for the table= name (an SQL identifier, checked by the code). v is an
-- integer or the serializer's text; e the absolute expiry in seconds since the epoch, or
-- NULL. The partial index serves the sweep of expired rows. IF NOT EXISTS: a table made
-- by a release that kept no version is this version already.
CREATE TABLE IF NOT EXISTS "{table}" (
    ns TEXT NOT NULL,
    k TEXT NOT NULL,
    v,
    e REAL,
    PRIMARY KEY (ns, k)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS "{table}_expiry" ON "{table}"(e) WHERE e IS NOT NULL;
