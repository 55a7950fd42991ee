-- Shared by reserve.lua and settle.lua (prepended to each when the script is loaded).
--
-- Cost: every redis.call costs about a microsecond of Redis CPU on top of the command, so
-- the scripts read each window hash once (HMGET), compute in Lua, and write it once (HSET).
--
-- Numbers: Redis Lua numbers are doubles, exact for integers below 2^53. Limits are capped
-- at 2^53 - 1 nano-USD (about 9 million USD per window) by the API, counters stay far below
-- 2^53, and every write goes through int() so no value is ever written in exponent form.
--
-- A line is one budget's current window. Its 3 keys: window hash, suspended flag, alerts
-- list. Its 9 ARGV values (strings, '' = none):
--   budget_id, window_index, limit_nanos, limit_tokens, limit_requests,
--   enforce (1|0), suspend_on_exceed (1|0), expire_at_ms, thresholds_csv (ascending)
-- Window hash fields: spent, rsv (reserved nanos), tok, rtok (reserved tokens), req, thr
-- (highest threshold crossed, percent).
local LINE_KEYS = 3
local LINE_ARGS = 9

local function num(v)
  return tonumber(v) or 0
end

local function int(x)
  return string.format('%.0f', x)
end

-- Lines from KEYS starting at key index `k0` and ARGV at `a0`.
local function read_lines(n, k0, a0)
  local lines = {}
  for i = 1, n do
    local k = k0 + (i - 1) * LINE_KEYS
    local a = a0 + (i - 1) * LINE_ARGS
    lines[i] = {
      w = KEYS[k], s = KEYS[k + 1], al = KEYS[k + 2],
      id = ARGV[a], idx = ARGV[a + 1], ln = ARGV[a + 2], lt = ARGV[a + 3], lr = ARGV[a + 4],
      enf = ARGV[a + 5], susp = ARGV[a + 6], exp = ARGV[a + 7], th = ARGV[a + 8],
    }
  end
  return lines
end

-- {spent, rsv, tok, rtok, req, thr} of a window, and whether the hash is new (no fields).
local function counters(w)
  local v = redis.call('HMGET', w, 'spent', 'rsv', 'tok', 'rtok', 'req', 'thr')
  local new = not (v[1] or v[2] or v[3] or v[4] or v[5] or v[6])
  return { num(v[1]), num(v[2]), num(v[3]), num(v[4]), num(v[5]), num(v[6]) }, new
end

local function write(line, c, new)
  redis.call('HSET', line.w, 'spent', int(c[1]), 'rsv', int(c[2]), 'tok', int(c[3]),
    'rtok', int(c[4]), 'req', int(c[5]), 'thr', int(c[6]))
  if new and line.exp ~= '' then
    -- Only a new window needs its expiry set: it never changes afterwards.
    redis.call('PEXPIREAT', line.w, line.exp)
  end
end

-- Whether settled usage reached `pct` percent of any limit.
local function reached(line, c, pct)
  local function at(used, limit)
    return limit ~= '' and used * 100 >= pct * tonumber(limit)
  end
  return at(c[1], line.ln) or at(c[3], line.lt) or at(c[5], line.lr)
end

-- Takes a reservation's hold off its windows (a window reset since is left alone).
local function release(d)
  for _, l in ipairs(d.l) do
    if redis.call('EXISTS', l.w) == 1 then
      local c, t = tonumber(d.c), tonumber(d.t)
      local v = redis.call('HMGET', l.w, 'rsv', 'rtok')
      redis.call('HSET', l.w, 'rsv', int(math.max(0, num(v[1]) - c)),
        'rtok', int(math.max(0, num(v[2]) - t)))
    end
  end
end
