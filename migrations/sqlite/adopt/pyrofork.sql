-- Adopt a Pyrofork-line file (Pyrofork, Electrogram: version 4, usernames keyed by username)
-- as schema 1, keeping its layout so Pyrofork and Electrogram can still open it.
-- Electrogram creates its usernames table (and Pyrofork its trigger) lazily: either may be
-- missing.
ALTER TABLE sessions ADD COLUMN server_address TEXT;
ALTER TABLE sessions ADD COLUMN port INTEGER;
-- The primary key is already an index on id.
DROP INDEX IF EXISTS idx_peers_id;
CREATE TABLE IF NOT EXISTS usernames (
    id TEXT PRIMARY KEY,
    peer_id INTEGER NOT NULL,
    last_update_on INTEGER NOT NULL DEFAULT (CAST(STRFTIME('%s', 'now') AS INTEGER))
);
CREATE TRIGGER IF NOT EXISTS trg_usernames_last_update_on AFTER UPDATE ON usernames
BEGIN
    UPDATE usernames SET last_update_on = CAST(STRFTIME('%s', 'now') AS INTEGER) WHERE id = NEW.id;
END;
CREATE TABLE IF NOT EXISTS update_state (
    id INTEGER PRIMARY KEY,
    pts INTEGER,
    qts INTEGER,
    date INTEGER,
    seq INTEGER
);
CREATE INDEX IF NOT EXISTS idx_peers_username ON peers (username);
CREATE INDEX IF NOT EXISTS idx_peers_phone_number ON peers (phone_number);
CREATE INDEX IF NOT EXISTS idx_usernames_peer_id ON usernames (peer_id);
