-- Indexes and triggers of the upstream layout's usernames table (shared/usernames_table.sql).
-- Run after any bulk copy into the table: building an index once is far cheaper than
-- updating it row by row, and the triggers must not fire for rows a script copies.
--
-- Pyrofork and Electrogram find a username through (id = username, peer_id) rows. The
-- triggers keep such a mirror row for every (id = peer id, username) row written except the
-- one peers.username already holds, and the other way round, whichever client writes (rows
-- an upstream-dev client wrote before its file was adopted have none: adopt/upstream_v7.sql
-- says why). Only
-- names that start with a letter (as Telegram's do) are mirrored: the INTEGER column would
-- turn "007" into 7. A name has at most one mirror row (idx_usernames_name): the newest
-- owner wins, as in Pyrofork's own table.
--
-- Every lookup a trigger makes is one index search, so writing n names costs O(n log n):
-- "+id" keeps SQLite off idx_usernames_id, whose entries for one peer are all its names.
CREATE INDEX IF NOT EXISTS idx_usernames_id ON usernames (id);
CREATE INDEX IF NOT EXISTS idx_usernames_username ON usernames (username);
CREATE INDEX IF NOT EXISTS idx_usernames_peer_id ON usernames (peer_id) WHERE peer_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS idx_usernames_name ON usernames (id) WHERE peer_id IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS trg_usernames_mirror_insert AFTER INSERT ON usernames
WHEN NEW.peer_id IS NULL AND NEW.username GLOB '[A-Za-z]*'
    AND NEW.username IS NOT (SELECT username FROM peers WHERE id = NEW.id)
BEGIN
    REPLACE INTO usernames (id, peer_id, last_update_on)
    VALUES (NEW.username, NEW.id, COALESCE(NEW.last_update_on, CAST(STRFTIME('%s', 'now') AS INTEGER)));
END;
CREATE TRIGGER IF NOT EXISTS trg_usernames_mirror_delete AFTER DELETE ON usernames
WHEN OLD.username IS NOT NULL AND OLD.peer_id IS NULL
BEGIN
    DELETE FROM usernames WHERE peer_id = OLD.id AND id = OLD.username;
END;
CREATE TRIGGER IF NOT EXISTS trg_usernames_unmirror_insert AFTER INSERT ON usernames
WHEN NEW.peer_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM usernames WHERE +id = NEW.peer_id AND username = NEW.id
)
BEGIN
    INSERT INTO usernames (id, username, last_update_on)
    VALUES (NEW.peer_id, NEW.id, NEW.last_update_on);
END;
CREATE TRIGGER IF NOT EXISTS trg_usernames_unmirror_delete AFTER DELETE ON usernames
WHEN OLD.peer_id IS NOT NULL
BEGIN
    DELETE FROM usernames WHERE +id = OLD.peer_id AND username = OLD.id;
END;
-- Pyrofork reads the stamp of the row it finds and fails on NULL. An adopted upstream file's
-- last_update_on column has no default (ALTER TABLE cannot add one that calls a function),
-- so a row inserted without one is stamped here.
CREATE TRIGGER IF NOT EXISTS trg_usernames_stamp AFTER INSERT ON usernames
WHEN NEW.last_update_on IS NULL AND NEW.peer_id IS NOT NULL
BEGIN
    UPDATE usernames SET last_update_on = CAST(STRFTIME('%s', 'now') AS INTEGER)
    WHERE rowid = NEW.rowid;
END;
