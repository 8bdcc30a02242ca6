"""The Lua scripts RedisStorage runs: one per batch of writes, one per kind of read.

A script runs atomically on the server, so a batch of writes is stored whole or not at
all, and a read sees a peer together with its usernames. Each is one round trip
(``EVALSHA``), whatever the batch's size. Every key a script touches is passed in
``KEYS`` and shares the session's hash tag, so the scripts run on a Redis Cluster too.

Numbers cross into Lua as strings (Lua's numbers are doubles; peer ids and access
hashes are 64-bit): the scripts never do arithmetic on them, and build a peer's stored
value by joining the strings Python sent.
"""

from __future__ import annotations

from .client import Script

__all__ = ["APPLY", "FIND_HOLDERS", "FIND_PEER", "OPEN", "READ_PEERS"]

_APPLY = r"""
-- KEYS: schema, session, peers, names, usernames, phones, ids, types, states
-- ARGV: the layout version; the batch as JSON (layout.apply_args); then session fields
-- as (name, value, '1' to set or '0' to clear) triples.
local schema, session, peers, names, usernames, phones, ids, types, states =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]

-- A script is not rolled back when a command fails in it: refuse foreign keys first.
for at, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'none' and kind ~= (at == 7 and 'zset' or 'hash') then
    return redis.error_reply(
      'WRONGTYPE ' .. key .. ' holds a ' .. kind .. ', not pyrogram-storage data')
  end
end

local batch = cjson.decode(ARGV[2])

-- Each peer changed is named by a key set and deleted at once (nothing stays stored):
-- the caches of other processes hear of that key (CLIENT TRACKING) and drop that peer
-- only, where the change of the peers hash alone would make them drop every peer. The
-- key ends with the writer's name: the server tells the writer of its own scripts'
-- keys too (NOLOOP does not cover scripts), and the writer keeps what it wrote.
local mark = string.sub(schema, 1, -7) .. 'changed:'
local writer = (batch.w and batch.w ~= '') and (':' .. batch.w) or ''
local function changed(id)
  local key = mark .. id .. writer
  redis.call('SET', key, '')
  redis.call('DEL', key)
end

-- An index maps a username (or phone) to the space-separated ids of its holders.
local function unhold(index, key, id)
  local held = redis.call('HGET', index, key)
  if not held then return end
  if held == id then
    redis.call('HDEL', index, key)
    return
  end
  local kept = {}
  for holder in string.gmatch(held, '[^ ]+') do
    if holder ~= id then kept[#kept + 1] = holder end
  end
  if #kept == 0 then
    redis.call('HDEL', index, key)
  else
    redis.call('HSET', index, key, table.concat(kept, ' '))
  end
end

local function hold(index, key, id)
  local held = redis.call('HGET', index, key)
  if not held then
    redis.call('HSET', index, key, id)
    return
  end
  for holder in string.gmatch(held, '[^ ]+') do
    if holder == id then return end
  end
  redis.call('HSET', index, key, held .. ' ' .. id)
end

local function count(kind, by)
  if redis.call('HINCRBY', types, kind, by) <= 0 then redis.call('HDEL', types, kind) end
end

-- Replace a peer's usernames (a list; empty: none) and their index entries; whether
-- they changed.
local function rename(id, new)
  local old = redis.call('HGET', names, id)
  local was = old and cjson.decode(old) or {}
  if #was == #new then  -- the same usernames in the same order: nothing to write
    local same = true
    for k = 1, #new do
      if was[k] ~= new[k] then same = false break end
    end
    if same then return false end
  end
  local before, after = {}, {}
  for _, name in ipairs(was) do before[name] = true end
  for _, name in ipairs(new) do after[name] = true end
  for name in pairs(before) do
    if not after[name] then unhold(usernames, name, id) end
  end
  for name in pairs(after) do
    if not before[name] then hold(usernames, name, id) end
  end
  if #new > 0 then
    redis.call('HSET', names, id, cjson.encode(new))
  elseif old then
    redis.call('HDEL', names, id)
  end
  return true
end

for _, row in ipairs(batch.d) do  -- deleted peers: id, order member
  local id, member = row[1], row[2]
  local old = redis.call('HGET', peers, id)
  if old then
    local record = cjson.decode(old)
    if record[3] ~= '' then unhold(phones, record[3], id) end
    rename(id, {})
    redis.call('HDEL', peers, id)
    redis.call('ZREM', ids, member)
    count(record[2], -1)
    changed(id)
  end
end

-- peers: id, order member, access hash, type, phone, last update, usernames (false: keep)
for _, row in ipairs(batch.p) do
  local id, member, kind, phone, new = row[1], row[2], row[4], row[5], row[7]
  local value = '[' .. row[3] .. ',' .. cjson.encode(kind) .. ',' .. cjson.encode(phone)
    .. ',' .. row[6] .. ']'
  local old = redis.call('HGET', peers, id)
  local touched = old ~= value
  if not old then
    if phone ~= '' then hold(phones, phone, id) end
    count(kind, 1)
    redis.call('ZADD', ids, 0, member)
    redis.call('HSET', peers, id, value)
  elseif old ~= value then
    local record = cjson.decode(old)
    if record[3] ~= phone then
      if record[3] ~= '' then unhold(phones, record[3], id) end
      if phone ~= '' then hold(phones, phone, id) end
    end
    if record[2] ~= kind then
      count(record[2], -1)
      count(kind, 1)
    end
    redis.call('HSET', peers, id, value)
  end
  if new and rename(id, new) then touched = true end
  if touched then changed(id) end
end

for _, row in ipairs(batch.u) do  -- usernames: id, list (a peer not stored is ignored)
  if redis.call('HEXISTS', peers, row[1]) == 1 and rename(row[1], row[2]) then
    changed(row[1])
  end
end

for _, id in ipairs(batch.ds) do  -- deleted update states
  redis.call('HDEL', states, id)
end
for _, row in ipairs(batch.s) do  -- update states stored whole: id, 'pts,qts,date,seq'
  redis.call('HSET', states, row[1], row[2])
end
for _, row in ipairs(batch.m) do  -- update states merged: an empty field keeps the stored one
  local id, value = row[1], row[2]
  local old = redis.call('HGET', states, id)
  if old then
    local was, merged = {}, {}
    for part in string.gmatch(old .. ',', '([^,]*),') do was[#was + 1] = part end
    local k = 0
    for part in string.gmatch(value .. ',', '([^,]*),') do
      k = k + 1
      merged[k] = (part == '' and was[k]) or part
    end
    value = table.concat(merged, ',')
  end
  redis.call('HSET', states, id, value)
end

for at = 3, #ARGV, 3 do  -- session fields
  if ARGV[at + 2] == '1' then
    redis.call('HSET', session, ARGV[at], ARGV[at + 1])
  else
    redis.call('HDEL', session, ARGV[at])
  end
end

-- Data never outlives its schema hash (another process may have deleted the session).
if redis.call('EXISTS', schema) == 0 then
  redis.call('HSET', schema, 'version', ARGV[1], 'writer', 'pyrogram-storage')
end
return 1
"""

_OPEN = r"""
-- KEYS: schema, session, peers, states. The schema, whether any data is stored, the session.
local schema = redis.call('HMGET', KEYS[1], 'version', 'writer')
local data = redis.call('EXISTS', KEYS[2], KEYS[3], KEYS[4])
return {schema[1], schema[2], data, redis.call('HGETALL', KEYS[2])}
"""

_FIND_PEER = r"""
-- KEYS: peers, names; ARGV: id. The peer's value and its usernames.
return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('HGET', KEYS[2], ARGV[1])}
"""

_FIND_HOLDERS = r"""
-- KEYS: an index (usernames or phones), peers, names; ARGV: the key, '1' for usernames.
-- Every holder: id, value, usernames (false: none, or not asked for).
local held = redis.call('HGET', KEYS[1], ARGV[1])
local found = {}
if not held then return found end
for id in string.gmatch(held, '[^ ]+') do
  found[#found + 1] = id
  found[#found + 1] = redis.call('HGET', KEYS[2], id)
  found[#found + 1] = ARGV[2] == '1' and redis.call('HGET', KEYS[3], id)
end
return found
"""

_READ_PEERS = r"""
-- KEYS: ids, peers, names; ARGV: the ZRANGEBYLEX start, the limit.
-- Each peer after the start in id order: id, value, usernames (false: none).
local members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
local found = {}
for _, member in ipairs(members) do
  local id = string.sub(member, 18)
  found[#found + 1] = id
  found[#found + 1] = redis.call('HGET', KEYS[2], id)
  found[#found + 1] = redis.call('HGET', KEYS[3], id)
end
return found
"""

APPLY = Script(_APPLY)
"""Stores one batch of writes, whole or not at all."""
OPEN = Script(_OPEN)
"""Reads the schema version, whether anything is stored, and the session."""
FIND_PEER = Script(_FIND_PEER)
"""Returns a peer with its usernames, in one round trip."""
FIND_HOLDERS = Script(_FIND_HOLDERS)
"""Returns every peer holding a username or phone number, with its usernames."""
READ_PEERS = Script(_READ_PEERS)
"""Reads the peers after a given id, in id order, with their usernames."""
