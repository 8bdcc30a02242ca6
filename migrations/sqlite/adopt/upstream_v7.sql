-- Adopt an upstream-dev file (Kurigram, Irenogram: version 7; upstream_v6.sql adds the server
-- columns first) as schema 1: peers gains the username column classic clients read, and the
-- usernames table the Pyrofork-line columns and mirror rows (shared/usernames_mirror.sql).
--
-- Built for big files: every statement is one pass over a table or one index search per
-- row, the rows already there stay in place (ALTER TABLE ADD COLUMN rewrites nothing), and
-- the new indexes and the triggers come after the rows they cover. A file of a million
-- peers with two usernames each takes seconds, not hours.
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

-- The Pyrofork-line columns. The existing rows read NULL in both: upstream rows have no
-- peer_id, and nothing reads their stamp.
ALTER TABLE usernames ADD COLUMN peer_id INTEGER;
ALTER TABLE usernames ADD COLUMN last_update_on INTEGER;
-- One mirror row per name that is not its peer's primary, stamped like its peer. Where two
-- rows claim a name the later one wins, as when the mirror trigger replaces a mirror row:
-- the unique index makes each insert replace the row of the name before it.
CREATE TEMP TABLE adopt_mirror AS
SELECT u.username AS name, u.id AS peer_id,
    COALESCE(p.last_update_on, CAST(STRFTIME('%s', 'now') AS INTEGER)) AS stamp
FROM usernames u LEFT JOIN peers p ON p.id = u.id
WHERE u.username GLOB '[A-Za-z]*' AND u.username IS NOT p.username
ORDER BY u.rowid;
CREATE UNIQUE INDEX idx_usernames_name ON usernames (id) WHERE peer_id IS NOT NULL;
INSERT OR REPLACE INTO usernames (id, peer_id, last_update_on)
SELECT name, peer_id, stamp FROM temp.adopt_mirror ORDER BY name, rowid;
DROP TABLE temp.adopt_mirror;

CREATE INDEX IF NOT EXISTS idx_peers_username ON peers (username);
CREATE INDEX IF NOT EXISTS idx_peers_phone_number ON peers (phone_number);
CREATE TRIGGER trg_peers_last_update_on AFTER UPDATE ON peers
BEGIN
    UPDATE peers SET last_update_on = CAST(STRFTIME('%s', 'now') AS INTEGER) WHERE id = NEW.id;
END;
.read shared/usernames_mirror.sql
