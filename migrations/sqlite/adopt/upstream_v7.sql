-- Adopt an upstream-dev file (Kurigram, Irenogram: version 7; upstream_v6.sql adds the server
-- columns first) as schema 1: peers gains the username column the classic and Pyrofork-line
-- clients read, and the usernames table the Pyrofork-line columns, the indexes and the
-- mirror triggers of shared/usernames_mirror.sql.
--
-- Built for big files, in time linear in the file: the client's rows stay where they are
-- (ALTER TABLE ADD COLUMN rewrites nothing), filling peers.username is one index search per
-- peer, and the new indexes and the triggers come after the rows they cover. A Kurigram
-- file of a million peers with two usernames each is adopted in a few seconds
-- (benchmarks/adopt.py).
--
-- The names the client wrote stay in its (id = peer id, username) rows, where every
-- pyrogram-storage read and the upstream-dev clients find them, and each peer's first one
-- also goes to peers.username, where the classic and Pyrofork-line clients look first.
-- They get no mirror rows: writing them would more than double the cost of the first open,
-- for the one case of Pyrofork or Electrogram opening the adopted file with their own
-- storage; those find a peer's other names once the peer is written again. Names written
-- after adoption are mirrored as in a new file.
--
-- The clients' trigger would stamp every peer "updated now", reviving expired usernames.
DROP TRIGGER IF EXISTS trg_peers_last_update_on;
-- The primary key is already an index on id.
DROP INDEX IF EXISTS idx_peers_id;
-- Versions 4 and 5 had neither of these; the fill below searches usernames by id.
CREATE TABLE IF NOT EXISTS update_state (
    id INTEGER PRIMARY KEY,
    pts INTEGER,
    qts INTEGER,
    date INTEGER,
    seq INTEGER
);
CREATE INDEX IF NOT EXISTS idx_usernames_id ON usernames (id);

-- A peer's primary username is its first: the entries of idx_usernames_id for one id are in
-- rowid order, so this is one index search per peer.
ALTER TABLE peers ADD COLUMN username TEXT;
UPDATE peers SET username = (
    SELECT u.username FROM usernames u WHERE u.id = peers.id AND u.username IS NOT NULL
    ORDER BY u.rowid LIMIT 1
);

-- The Pyrofork-line columns. The client's rows read NULL in both: they have no peer_id, and
-- nothing reads their stamp.
ALTER TABLE usernames ADD COLUMN peer_id INTEGER;
ALTER TABLE usernames ADD COLUMN last_update_on INTEGER;

CREATE INDEX IF NOT EXISTS idx_peers_username ON peers (username);
CREATE INDEX IF NOT EXISTS idx_peers_phone_number ON peers (phone_number);
CREATE TRIGGER trg_peers_last_update_on AFTER UPDATE ON peers
BEGIN
    UPDATE peers SET last_update_on = CAST(STRFTIME('%s', 'now') AS INTEGER) WHERE id = NEW.id;
END;
.read shared/usernames_mirror.sql
