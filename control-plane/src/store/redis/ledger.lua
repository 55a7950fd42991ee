-- ledger.lua: the ledger's part of a settlement (prepended to settle.lua, after common.lua).
-- It runs inside settle.lua's one script call, so a settlement's record and rollups are
-- written in the same atomic step as its charge, and only when the charge is applied (never
-- for a replay). Layout: docs/redis-keys.md.
--
-- KEYS, per settlement with a record (from k): the org's record stream <p>:{tag}:lrec, the
--   hour's and the day's row indexes <p>:{tag}:lh:<hour> and <p>:{tag}:ld:<day>, then per
--   row its hour row and day row (the index key, ':', the row's field).
-- ARGV (from a): r = number of rows (0: no record, nothing else follows), then the record
--   (compact JSON, written by Rust), the stream's MAXLEN, the MINID to trim to ('' = no age
--   limit), the hour's and the day's expiry (Unix ms), the entry id "<now_ms>-*", the 11
--   amounts to add (cost, requests, denied, then the 8 token kinds), then the r row fields
--   "<scope>\t<provider>\t<model>".
--
-- A row is one string of twelve signed 64-bit integers changed with one BITFIELD (the 11
-- amounts, then #11 = how many writes; exactly 1 means this write created the row, which is
-- then added to its bucket's index and given its expiry). OVERFLOW SAT: a row saturates,
-- never wraps. No number is parsed or formatted in Lua (see common.lua's cost model).

local function ledger_bump(row, index, exp, field, v)
  local c = redis.call('BITFIELD', row, 'OVERFLOW', 'SAT',
    'INCRBY', 'i64', '#0', ARGV[v], 'INCRBY', 'i64', '#1', ARGV[v + 1],
    'INCRBY', 'i64', '#2', ARGV[v + 2], 'INCRBY', 'i64', '#3', ARGV[v + 3],
    'INCRBY', 'i64', '#4', ARGV[v + 4], 'INCRBY', 'i64', '#5', ARGV[v + 5],
    'INCRBY', 'i64', '#6', ARGV[v + 6], 'INCRBY', 'i64', '#7', ARGV[v + 7],
    'INCRBY', 'i64', '#8', ARGV[v + 8], 'INCRBY', 'i64', '#9', ARGV[v + 9],
    'INCRBY', 'i64', '#10', ARGV[v + 10], 'INCRBY', 'i64', '#11', '1')
  if c[12] == 1 then
    redis.call('SADD', index, field)
    redis.call('PEXPIREAT', row, exp)
    redis.call('PEXPIREAT', index, exp)
  end
end

-- How many KEYS and ARGV one settlement's ledger part takes (what a replay skips).
local function ledger_size(a)
  local r = tonumber(ARGV[a])
  if r == 0 then
    return 0, 1
  end
  return 3 + 2 * r, 18 + r
end

-- Writes one settlement's record and rollups (KEYS from k, ARGV from a).
local function ledger_write(k, a)
  local r = tonumber(ARGV[a])
  if r == 0 then
    return
  end
  local stream = KEYS[k]
  local rec, maxlen, minid, hexp, dexp, id =
    ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  -- The entry id is the control plane's clock, so records are paged by the time it wrote
  -- them; a replica whose clock is behind the stream's last entry gets Redis's own id,
  -- which is always past the last one.
  local added = redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, id, 'r', rec)
  if type(added) == 'table' and added.err then
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'r', rec)
  end
  if minid ~= '' then
    redis.call('XTRIM', stream, 'MINID', '~', minid)
  end
  local v, f = a + 7, a + 18
  for i = 0, r - 1 do
    local field = ARGV[f + i]
    ledger_bump(KEYS[k + 3 + 2 * i], KEYS[k + 1], hexp, field, v)
    ledger_bump(KEYS[k + 4 + 2 * i], KEYS[k + 2], dexp, field, v)
  end
end
