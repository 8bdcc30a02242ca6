-- The pyrogram_storage schema, version 1.
-- A superset of the upstream-dev clients' v7 layout (Kurigram, Irenogram, Pyrotgfork read it)
-- that also keeps the primary username in peers.username (Pyrogram, Hydrogram, Pyrofork,
-- Electrogram read that). version.number stays 7 so no client runs its own steps on it;
-- our own schema version lives in PRAGMA user_version. See migrations/README for the other
-- physical forms a version-1 database can have (the Pyrofork layout, adopted client files).
CREATE TABLE sessions (
    dc_id INTEGER PRIMARY KEY,
    server_address TEXT,
    port INTEGER,
    api_id INTEGER,
    test_mode INTEGER,
    auth_key BLOB,
    date INTEGER NOT NULL,
    user_id INTEGER,
    is_bot INTEGER
);

CREATE TABLE peers (
    id INTEGER PRIMARY KEY,
    access_hash INTEGER,
    type TEXT NOT NULL,
    username TEXT,
    phone_number TEXT,
    last_update_on INTEGER NOT NULL DEFAULT (CAST(STRFTIME('%s', 'now') AS INTEGER))
);

.read shared/usernames_table.sql

CREATE TABLE update_state (
    id INTEGER PRIMARY KEY,
    pts INTEGER,
    qts INTEGER,
    date INTEGER,
    seq INTEGER
);

CREATE TABLE version (number INTEGER PRIMARY KEY);

CREATE INDEX idx_peers_username ON peers (username);
CREATE INDEX idx_peers_phone_number ON peers (phone_number);
.read shared/usernames_mirror.sql

INSERT INTO version VALUES (7);
INSERT INTO sessions (dc_id, date) VALUES (2, 0);
