-- Adopt an upstream-dev file without the server columns (Pyrotgfork: version 6; Kurigram and
-- Irenogram before their version 7) as schema 1: add the v7 server columns, then adopt it
-- as a v7 file. Version 7 is what Pyrotgfork passes through untouched.
ALTER TABLE sessions ADD COLUMN server_address TEXT;
ALTER TABLE sessions ADD COLUMN port INTEGER;
.read adopt/upstream_v7.sql
UPDATE version SET number = 7;
