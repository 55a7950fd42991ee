-- Shared by reserve.lua and settle.lua (prepended to each when the script is loaded).
--
-- Numbers: Redis Lua numbers are doubles, exact for integers below 2^53. HINCRBY keeps the
-- stored counters exact int64; the comparisons here are exact as long as limits and counters
-- stay below 2^53 nano-USD (about 9 million USD per window), which the API enforces.
--
-- A line is one budget's current window. Its 4 keys: window hash, reservations zset,
-- suspended flag, alerts list. Its 9 ARGV values (strings, '' = none):
--   budget_id, window_index, limit_nanos, limit_tokens, limit_requests,
--   enforce (1|0), suspend_on_exceed (1|0), expire_at_ms, thresholds_csv (ascending)
local LINE_KEYS = 4
local LINE_ARGS = 9

local function num(v)
  return tonumber(v) or 0
end

-- Lines from KEYS starting at key index `k0` and ARGV at `a0`.
local function read_lines(n, k0, a0)
  local lines = {}
  for i = 1, n do
    local k = k0 + (i - 1) * LINE_KEYS
    local a = a0 + (i - 1) * LINE_ARGS
    lines[i] = {
      w = KEYS[k], z = KEYS[k + 1], s = KEYS[k + 2], al = KEYS[k + 3],
      id = ARGV[a], idx = ARGV[a + 1], ln = ARGV[a + 2], lt = ARGV[a + 3], lr = ARGV[a + 4],
      enf = ARGV[a + 5], susp = ARGV[a + 6], exp = ARGV[a + 7], th = ARGV[a + 8],
    }
  end
  return lines
end

-- spent, rsv, tok, rtok, req, thr of a window.
local function counters(w)
  local v = redis.call('HMGET', w, 'spent', 'rsv', 'tok', 'rtok', 'req', 'thr')
  return { num(v[1]), num(v[2]), num(v[3]), num(v[4]), num(v[5]), num(v[6]) }
end

local function expire(line)
  if line.exp ~= '' then
    redis.call('PEXPIREAT', line.w, line.exp)
    redis.call('PEXPIREAT', line.z, line.exp)
  end
end

-- Whether settled usage reached `pct` percent of any limit.
local function reached(line, c, pct)
  local function at(used, limit)
    return limit ~= '' and used * 100 >= pct * tonumber(limit)
  end
  return at(c[1], line.ln) or at(c[3], line.lt) or at(c[5], line.lr)
end
