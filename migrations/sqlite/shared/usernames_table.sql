-- The usernames table of the upstream layout. It holds both client families' rows: the
-- upstream-dev clients' (id = peer id, username) rows, which Kurigram, Irenogram and
-- Pyrotgfork read, and the Pyrofork line's (id = username, peer_id) "mirror" rows, which
-- Pyrofork and Electrogram read. shared/usernames_mirror.sql keeps the two kinds in step.
CREATE TABLE usernames (
    id INTEGER,
    username TEXT,
    peer_id INTEGER,
    last_update_on INTEGER NOT NULL DEFAULT (CAST(STRFTIME('%s', 'now') AS INTEGER)),
    FOREIGN KEY (id) REFERENCES peers (id)
);
