-- lease.lua: grant, renew and take from leases, and release those whose time has passed
-- (docs/leases.md; keys in docs/redis-keys.md). Prepended with common.lua.
--
-- Why one script: the check ("is there room for the lease in every budget?") and the hold
-- must happen with nothing in between across all of its windows, as a reservation's do, or
-- two grants could both take the last slice; a take and the record it changes likewise, or
-- a lease's hold could come off its windows twice.
--
-- A lease record is a hash <p>:{<tag>}:lease:<lease_id>: `w` its window keys joined by
-- ' ', `u` `t` `q` the nano-USD, tokens and requests it holds (the same on each window),
-- `a` admit-until and `r` release-at (Unix ms), `x` '1' once returned, `m` the holder and
-- key as JSON (written and read by Rust only). <p>:{<tag>}:leases is a sorted set of the
-- tag's lease ids by release time. A window holds leases in #1 (nano-USD), #3 (tokens) and
-- #6 (requests, which reserve.lua counts against request limits beside #4).
--
-- ARGV[1] is the operation.
-- 'grant' / 'renew': KEYS[1] the record, KEYS[2] the lease set, KEYS[2 + i] line i's window.
--   ARGV[2] lease id, [3] now, [4] nano-USD, [5] tokens, [6] requests (a grant: the
--   amounts; a renewal: one slice, of which it adds what keeps the lease within two
--   slices), [7] admit until, [8] release at, [9] meta JSON, [10] the windows' signature
--   (their keys joined by ' '), then 5 per line: limit nano-USD, limit tokens, limit requests
--   ('' = none), flags (1 = enforce + 2 = suspend_on_exceed), window expiry ('' = none).
--   Returns {'ok', u, t, q} (the amounts added), {'deny', i, reason, spent, rsv, tok, rtok,
--   req, rreq} (line i has no room; nothing is held), {'gone'} (a renewal of a lease not
--   held, or returned; a grant of an id taken) or {'moved'} (a renewal over other windows).
-- 'take': KEYS[1] the record, KEYS[2] the lease set. ARGV[2] lease id, [3] now, [4] [5] [6]
--   the amounts to take (each clamped to what is held), [7] '1' to mark it returned.
--   Returns {'ok', u, t, q} (taken) or {'gone'}.
-- 'sweep': KEYS[1] the lease set. ARGV[2] '' (no lease), [3] now, [4] the tag's record key
--   prefix (<p>:{<tag>}:lease:), [5] most leases to release. Returns the number released.
local op, now = ARGV[1], ARGV[3]

-- Adds (u, t, q: decimal strings, maybe negative) to the lease counters of window w; a
-- counter that would go negative (the window was reset since) is clamped to 0, and a
-- window left with nothing at all is deleted (a hold that created it, taken off again).
local function hold(w, u, t, q)
  if u == '0' and t == '0' and q == '0' then
    return
  end
  local r = redis.call('BITFIELD', w, 'OVERFLOW', 'SAT', 'GET', 'i64', '#0',
    'INCRBY', 'i64', '#1', u, 'GET', 'i64', '#2', 'INCRBY', 'i64', '#3', t,
    'GET', 'i64', '#4', 'INCRBY', 'i64', '#6', q)
  local spent, rsv, tok, rtok, req, rreq = r[1], r[2], r[3], r[4], r[5], r[6]
  if spent == 0 and tok == 0 and req == 0 and rsv <= 0 and rtok <= 0 and rreq <= 0 then
    redis.call('DEL', w)
  elseif rsv < 0 or rtok < 0 or rreq < 0 then
    redis.call('BITFIELD', w, 'SET', 'i64', '#1', rsv < 0 and '0' or int(rsv),
      'SET', 'i64', '#3', rtok < 0 and '0' or int(rtok),
      'SET', 'i64', '#6', rreq < 0 and '0' or int(rreq))
  end
end

-- Takes everything a lease record still holds off its windows and deletes it.
local function drop(key)
  local f = redis.call('HMGET', key, 'w', 'u', 't', 'q')
  if f[1] then
    local nu, nt, nq = neg(f[2] or '0'), neg(f[3] or '0'), neg(f[4] or '0')
    for w in string.gmatch(f[1], '[^ ]+') do
      hold(w, nu, nt, nq)
    end
  end
  redis.call('DEL', key)
end

-- Releases up to `most` leases of this tag whose release time has passed.
local function sweep(set, prefix, most)
  local due = redis.call('ZRANGEBYSCORE', set, '-inf', now, 'LIMIT', 0, most)
  for _, id in ipairs(due) do
    drop(prefix .. id)
  end
  if #due > 0 then
    redis.call('ZREM', set, unpack(due))
  end
  return #due
end

if op == 'sweep' then
  return sweep(KEYS[1], ARGV[4], tonumber(ARGV[5]))
end

local id = ARGV[2]
local key, set = KEYS[1], KEYS[2]

if op == 'take' then
  local f = redis.call('HMGET', key, 'w', 'u', 't', 'q', 'x')
  if not f[1] then
    return { 'gone' }
  end
  local taken = {}
  for i = 1, 3 do
    local want, held = tonumber(ARGV[3 + i]), tonumber(f[1 + i])
    taken[i] = int(math.max(0, math.min(want, held)))
  end
  for w in string.gmatch(f[1], '[^ ]+') do
    hold(w, neg(taken[1]), neg(taken[2]), neg(taken[3]))
  end
  local u = redis.call('HINCRBY', key, 'u', neg(taken[1]))
  local t = redis.call('HINCRBY', key, 't', neg(taken[2]))
  local q = redis.call('HINCRBY', key, 'q', neg(taken[3]))
  local returned = f[5] == '1' or ARGV[7] == '1'
  if returned and u <= 0 and t <= 0 and q <= 0 then
    -- Given back and nothing in flight: done.
    redis.call('DEL', key)
    redis.call('ZREM', set, id)
  elseif ARGV[7] == '1' then
    redis.call('HSET', key, 'x', '1')
  end
  return { 'ok', taken[1], taken[2], taken[3] }
end

-- 'grant' or 'renew'. Leases of this tag whose time has passed are released first.
sweep(set, string.sub(key, 1, #key - #id), 8)
local add = { ARGV[4], ARGV[5], ARGV[6] }
if op == 'renew' then
  local f = redis.call('HMGET', key, 'w', 'u', 't', 'q', 'x')
  if not f[1] or f[5] == '1' then
    return { 'gone' }
  end
  if f[1] ~= ARGV[10] then
    return { 'moved' }
  end
  for i = 1, 3 do
    local slice, held = tonumber(ARGV[3 + i]), tonumber(f[1 + i])
    add[i] = int(math.max(0, math.min(slice, 2 * slice - held)))
  end
elseif redis.call('EXISTS', key) == 1 then
  return { 'gone' }
end
local u, t, q = tonumber(add[1]), tonumber(add[2]), tonumber(add[3])
-- Check every line before holding on any: all or nothing.
for i = 1, #KEYS - 2 do
  local w, a = KEYS[2 + i], 6 + 5 * i
  local ln, lt, lr, flags = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  if flags == '1' or flags == '3' then
    local c = redis.call('BITFIELD', w, 'GET', 'i64', '#0', 'GET', 'i64', '#1',
      'GET', 'i64', '#2', 'GET', 'i64', '#3', 'GET', 'i64', '#4', 'GET', 'i64', '#6')
    local reason = nil
    if flags == '3' and redis.call('EXISTS', side_key(w, 'susp')) == 1 then
      reason = 'suspended'
    elseif lr ~= '' and c[5] + c[6] + q > tonumber(lr) then
      reason = 'requests'
    elseif ln ~= '' and c[1] + c[2] + u > tonumber(ln) then
      reason = 'usd'
    elseif lt ~= '' and c[3] + c[4] + t > tonumber(lt) then
      reason = 'tokens'
    end
    if reason then
      return { 'deny', i, reason, reply(c[1]), reply(c[2]), reply(c[3]), reply(c[4]),
        reply(c[5]), reply(c[6]) }
    end
  end
end
for i = 1, #KEYS - 2 do
  local w, exp = KEYS[2 + i], ARGV[10 + 5 * i]
  hold(w, add[1], add[2], add[3])
  -- A window this hold created gets its expiry (window end + grace), as a reserve's does.
  if exp ~= '' and redis.call('PTTL', w) == -1 then
    redis.call('PEXPIREAT', w, exp)
  end
end
if op == 'renew' then
  redis.call('HINCRBY', key, 'u', add[1])
  redis.call('HINCRBY', key, 't', add[2])
  redis.call('HINCRBY', key, 'q', add[3])
  redis.call('HSET', key, 'a', ARGV[7], 'r', ARGV[8])
else
  redis.call('HSET', key, 'w', ARGV[10], 'u', add[1], 't', add[2], 'q', add[3],
    'a', ARGV[7], 'r', ARGV[8], 'm', ARGV[9])
end
-- The record outlives its release time by a day, so that a sweep always finds it.
redis.call('PEXPIREAT', key, tonumber(ARGV[8]) + 86400000)
redis.call('ZADD', set, ARGV[8], id)
return { 'ok', add[1], add[2], add[3] }
