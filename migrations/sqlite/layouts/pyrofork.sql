-- Turn a freshly created database into the Pyrofork-line layout (Pyrofork, Electrogram):
-- their usernames table is keyed by the username, and their schema version is 4.
DROP TRIGGER trg_usernames_mirror_insert;
DROP TRIGGER trg_usernames_mirror_delete;
DROP TRIGGER trg_usernames_unmirror_insert;
DROP TRIGGER trg_usernames_unmirror_delete;
DROP TRIGGER trg_usernames_stamp;
DROP INDEX idx_usernames_id;
DROP INDEX idx_usernames_username;
DROP INDEX idx_usernames_peer_id;
DROP INDEX idx_usernames_name;
DROP TABLE usernames;
CREATE TABLE usernames (
    id TEXT PRIMARY KEY,
    peer_id INTEGER NOT NULL,
    last_update_on INTEGER NOT NULL DEFAULT (CAST(STRFTIME('%s', 'now') AS INTEGER))
);
CREATE INDEX idx_usernames_peer_id ON usernames (peer_id);
UPDATE version SET number = 4;
