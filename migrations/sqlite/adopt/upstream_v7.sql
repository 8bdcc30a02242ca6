-- Adopt an upstream-dev v7 file (Kurigram, Irenogram) as schema 1: add the peers.username
-- column classic clients read. Nothing else changes.
ALTER TABLE peers ADD COLUMN username TEXT;
CREATE INDEX IF NOT EXISTS idx_peers_username ON peers (username);
CREATE INDEX IF NOT EXISTS idx_peers_phone_number ON peers (phone_number);
CREATE INDEX IF NOT EXISTS idx_usernames_id ON usernames (id);
CREATE INDEX IF NOT EXISTS idx_usernames_username ON usernames (username);
