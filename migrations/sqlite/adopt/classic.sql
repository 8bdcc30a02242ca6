-- Adopt a classic file (Pyrogram 2.0.106, Hydrogram: version 3, peers.username, no usernames
-- or update_state table) as schema 1. Pyrogram and Hydrogram still read the result; the
-- version becomes 7 so upstream-dev clients do not re-run their 3->4 step on it.
ALTER TABLE sessions ADD COLUMN server_address TEXT;
ALTER TABLE sessions ADD COLUMN port INTEGER;
CREATE TABLE usernames (
    id INTEGER,
    username TEXT,
    FOREIGN KEY (id) REFERENCES peers (id)
);
CREATE TABLE IF NOT EXISTS update_state (
    id INTEGER PRIMARY KEY,
    pts INTEGER,
    qts INTEGER,
    date INTEGER,
    seq INTEGER
);
CREATE INDEX IF NOT EXISTS idx_peers_username ON peers (username);
CREATE INDEX IF NOT EXISTS idx_peers_phone_number ON peers (phone_number);
CREATE INDEX idx_usernames_id ON usernames (id);
CREATE INDEX idx_usernames_username ON usernames (username);
INSERT INTO usernames (id, username) SELECT id, username FROM peers WHERE username IS NOT NULL;
UPDATE version SET number = 7;
