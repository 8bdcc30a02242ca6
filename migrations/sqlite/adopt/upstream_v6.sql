-- Adopt an upstream-dev v6 file (Pyrotgfork) as schema 1: add the v7 server columns and the
-- peers.username column classic clients read; version 7 is what Pyrotgfork passes through.
ALTER TABLE sessions ADD COLUMN server_address TEXT;
ALTER TABLE sessions ADD COLUMN port INTEGER;
ALTER TABLE peers ADD COLUMN username TEXT;
CREATE INDEX IF NOT EXISTS idx_peers_username ON peers (username);
CREATE INDEX IF NOT EXISTS idx_peers_phone_number ON peers (phone_number);
CREATE INDEX IF NOT EXISTS idx_usernames_id ON usernames (id);
CREATE INDEX IF NOT EXISTS idx_usernames_username ON usernames (username);
UPDATE version SET number = 7;
