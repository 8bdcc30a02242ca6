-- pyrogram_storage's PostgreSQL schema, version 1: every session in one set of tables.
--
-- Run by pyrogram_storage/postgres/schema.py in one transaction, with search_path set
-- to the schema chosen for the sessions (default "pyrogram_storage"), so names here are
-- unqualified. The interpreter records the version in schema_version afterwards.
-- No foreign keys: each row costs no lookup in sessions, and delete() removes a
-- session's rows from every table itself, in one transaction.

CREATE TABLE schema_version (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version integer NOT NULL,
    writer text NOT NULL
);

-- One row per session; sid keys the session's rows in the other tables.
CREATE TABLE sessions (
    sid integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    dc_id bigint NOT NULL DEFAULT 2,
    api_id bigint,
    test_mode boolean,
    auth_key bytea,
    date bigint NOT NULL DEFAULT 0,
    user_id bigint,
    is_bot boolean,
    server_address text,
    port bigint
);

-- usernames: the peer's usernames, primary first (what a read returns); the table
-- "usernames" below indexes them for lookups.
CREATE TABLE peers (
    sid integer NOT NULL,
    id bigint NOT NULL,
    access_hash bigint NOT NULL,
    type text NOT NULL,
    usernames text[] NOT NULL DEFAULT '{}',
    phone_number text,
    last_update_on bigint NOT NULL,
    PRIMARY KEY (sid, id)
);
CREATE INDEX peers_phone ON peers (sid, phone_number) WHERE phone_number IS NOT NULL;

CREATE TABLE usernames (
    sid integer NOT NULL,
    username text NOT NULL,
    peer_id bigint NOT NULL,
    PRIMARY KEY (sid, username, peer_id)
);
CREATE INDEX usernames_peer ON usernames (sid, peer_id);

CREATE TABLE update_states (
    sid integer NOT NULL,
    id bigint NOT NULL,
    pts bigint,
    qts bigint,
    date bigint,
    seq bigint,
    PRIMARY KEY (sid, id)
);
