-- Adopt a classic file (Pyrogram 2.0.106, Hydrogram: version 3, peers.username, no usernames
-- or update_state table) as schema 1. Pyrogram and Hydrogram still read the result; the
-- version becomes 7 so upstream-dev clients do not re-run their 3->4 step on it.
ALTER TABLE sessions ADD COLUMN server_address TEXT;
ALTER TABLE sessions ADD COLUMN port INTEGER;
-- The primary key is already an index on id.
DROP INDEX IF EXISTS idx_peers_id;
CREATE TABLE IF NOT EXISTS update_state (
    id INTEGER PRIMARY KEY,
    pts INTEGER,
    qts INTEGER,
    date INTEGER,
    seq INTEGER
);
.read shared/usernames_table.sql
-- One name per peer, the one peers.username holds: nothing to mirror.
INSERT INTO usernames (id, username, last_update_on)
SELECT id, username, last_update_on FROM peers WHERE username IS NOT NULL ORDER BY id;
CREATE INDEX IF NOT EXISTS idx_peers_username ON peers (username);
CREATE INDEX IF NOT EXISTS idx_peers_phone_number ON peers (phone_number);
.read shared/usernames_mirror.sql
UPDATE version SET number = 7;
