-- The pyrogram_storage schema, version 1.
-- A superset of the upstream-dev clients' v7 layout (Kurigram, Irenogram, Pyrotgfork read it)
-- that also keeps the primary username in peers.username (Pyrogram, Hydrogram, Pyrofork,
-- Electrogram read that). version.number stays 7 so no client runs its own steps on it;
-- our own schema version lives in PRAGMA user_version.
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

CREATE TABLE usernames (
    id INTEGER,
    username TEXT,
    peer_id INTEGER,
    last_update_on INTEGER NOT NULL DEFAULT (CAST(STRFTIME('%s', 'now') AS INTEGER)),
    FOREIGN KEY (id) REFERENCES peers (id)
);
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
CREATE INDEX idx_usernames_id ON usernames (id);
CREATE INDEX idx_usernames_username ON usernames (username);


INSERT INTO version VALUES (7);
INSERT INTO sessions (dc_id, date) VALUES (2, 0);
