-- Version 2: the peers table's username and phone indexes hold only the peers that have
-- one. Most peers have neither, and each index entry is work on every write; the
-- clients' lookups (WHERE username = ?, WHERE phone_number = ?) use these partial
-- indexes as they used the full ones (an equality implies IS NOT NULL).
DROP INDEX IF EXISTS idx_peers_username;
CREATE INDEX idx_peers_username ON peers (username) WHERE username IS NOT NULL;
DROP INDEX IF EXISTS idx_peers_phone_number;
CREATE INDEX idx_peers_phone_number ON peers (phone_number) WHERE phone_number IS NOT NULL;
