-- The peer id snapshot (pyrogram_storage/sqlite/_snapshot.py): every stored peer's id,
-- access hash and type, in blobs written when a FileStorage that was the file's
-- only writer closes, and read back when one opens it again, so that id lookups answer
-- from memory at once instead of waiting for the peers to be read.
--
-- Not a numbered step: the table and its triggers are made at close; the triggers are
-- dropped at open (the table too, when its snapshot is not usable), never part of the
-- schema a client or a migration sees as ours. While they exist, any write to peers,
-- whoever makes it (a client opening the file, another tool), deletes the snapshot; a
-- snapshot found without them is never used: it is never read stale.
CREATE TABLE IF NOT EXISTS peer_ids_snapshot (
    part INTEGER PRIMARY KEY,  -- 0: the header; 1, 2...: the peers, in id order
    format INTEGER,
    peers INTEGER,
    checksum INTEGER,
    ids BLOB,
    hashes BLOB,
    kinds BLOB
);
CREATE TRIGGER IF NOT EXISTS trg_peer_ids_snapshot_insert AFTER INSERT ON peers
BEGIN
    DELETE FROM peer_ids_snapshot;
END;
CREATE TRIGGER IF NOT EXISTS trg_peer_ids_snapshot_update AFTER UPDATE ON peers
BEGIN
    DELETE FROM peer_ids_snapshot;
END;
CREATE TRIGGER IF NOT EXISTS trg_peer_ids_snapshot_delete AFTER DELETE ON peers
BEGIN
    DELETE FROM peer_ids_snapshot;
END;
