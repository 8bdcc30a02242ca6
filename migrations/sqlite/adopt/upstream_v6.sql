-- Adopt an upstream-dev v6 file (Pyrotgfork) as schema 1: add the v7 server columns and the
-- peers.username column classic clients read; version 7 is what Pyrotgfork passes through.
ALTER TABLE sessions ADD COLUMN server_address TEXT;
ALTER TABLE sessions ADD COLUMN port INTEGER;
ALTER TABLE peers ADD COLUMN username TEXT;
CREATE INDEX IF NOT EXISTS idx_peers_username ON peers (username);
CREATE INDEX IF NOT EXISTS idx_peers_phone_number ON peers (phone_number);
-- Rebuild usernames with the Pyrofork-line columns too (see 0001_initial.sql).
ALTER TABLE usernames RENAME TO usernames_adopted;
DROP INDEX IF EXISTS idx_usernames_id;
DROP INDEX IF EXISTS idx_usernames_username;
CREATE TABLE usernames (
    id INTEGER,
    username TEXT,
    peer_id INTEGER,
    last_update_on INTEGER NOT NULL DEFAULT (CAST(STRFTIME('%s', 'now') AS INTEGER)),
    FOREIGN KEY (id) REFERENCES peers (id)
);
-- The clients' trigger would stamp every peer "updated now", reviving expired usernames.
DROP TRIGGER IF EXISTS trg_peers_last_update_on;
UPDATE peers SET username = (
    SELECT username FROM usernames_adopted u WHERE u.id = peers.id AND u.username IS NOT NULL
    ORDER BY u.rowid LIMIT 1
);
CREATE TRIGGER trg_peers_last_update_on AFTER UPDATE ON peers
BEGIN
    UPDATE peers SET last_update_on = CAST(STRFTIME('%s', 'now') AS INTEGER) WHERE id = NEW.id;
END;
-- Pyrofork and Electrogram find a username through (id = username, peer_id) rows. These
-- triggers keep such a "mirror" row for every (id = peer id, username) row except the one
-- peers.username already holds, and the other way round, whichever client writes. Only
-- names that start with a letter (as Telegram's do) are mirrored: the INTEGER column would
-- turn "007" into 7.
CREATE INDEX idx_usernames_peer_id ON usernames (peer_id) WHERE peer_id IS NOT NULL;
CREATE UNIQUE INDEX idx_usernames_name ON usernames (id) WHERE peer_id IS NOT NULL;
CREATE TRIGGER trg_usernames_mirror_insert AFTER INSERT ON usernames
WHEN NEW.peer_id IS NULL AND NEW.username GLOB '[A-Za-z]*'
    AND NEW.username IS NOT (SELECT username FROM peers WHERE id = NEW.id)
BEGIN
    REPLACE INTO usernames (id, peer_id, last_update_on)
    VALUES (NEW.username, NEW.id, NEW.last_update_on);
END;
CREATE TRIGGER trg_usernames_mirror_delete AFTER DELETE ON usernames
WHEN OLD.username IS NOT NULL AND OLD.peer_id IS NULL
BEGIN
    DELETE FROM usernames WHERE peer_id = OLD.id AND id = OLD.username;
END;
CREATE TRIGGER trg_usernames_unmirror_insert AFTER INSERT ON usernames
WHEN NEW.peer_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM usernames WHERE id = NEW.peer_id AND username = NEW.id
)
BEGIN
    INSERT INTO usernames (id, username, last_update_on)
    VALUES (NEW.peer_id, NEW.id, NEW.last_update_on);
END;
CREATE TRIGGER trg_usernames_unmirror_delete AFTER DELETE ON usernames
WHEN OLD.peer_id IS NOT NULL
BEGIN
    DELETE FROM usernames WHERE id = OLD.peer_id AND username = OLD.id;
END;
INSERT INTO usernames (id, username) SELECT id, username FROM usernames_adopted ORDER BY rowid;
DROP TABLE usernames_adopted;

CREATE INDEX IF NOT EXISTS idx_usernames_id ON usernames (id);
CREATE INDEX IF NOT EXISTS idx_usernames_username ON usernames (username);
UPDATE version SET number = 7;
