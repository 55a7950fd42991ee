-- Shared by reserve.lua and settle.lua (prepended to each when the script is loaded).
--
-- Cost: each redis.call costs a few microseconds of Redis CPU (command dispatch plus reply
-- conversion), far more than the Lua around it. So a window is ONE string key
-- "spent:rsv:tok:rtok:req:thr", every window of a call is read with ONE MGET (together with
-- the reservation record, which doubles as the replay check), and written back with one
-- SET each.
--
-- Numbers: Redis Lua numbers are doubles, exact for integers below 2^53. Limits are capped
-- at 2^53 - 1 nano-USD (about 9 million USD per window) by the API, counters stay far below
-- 2^53, and every write goes through int() so no value is ever written in exponent form.
--
-- A line is one budget's current window. KEYS holds its window key; ARGV holds ONE packed
-- string "budget_id|window_index|limit_nanos|limit_tokens|limit_requests|enforce|
-- suspend_on_exceed|expire_at_ms|thresholds_csv" ('' = none; enforce and suspend are 1|0).
-- Packing matters: each ARGV costs Redis about 0.1 us to hand to Lua, 9 per line did add up.
-- Its suspended flag <p>:{tag}:susp:<budget_id> and alerts list <p>:{tag}:alerts are derived
-- from the window key <p>:{tag}:w:<budget_id>:<index> (side_key), so they share its slot.
-- Window value fields: spent (nanos), rsv (reserved nanos), tok, rtok (reserved tokens),
-- req (requests), thr (highest threshold crossed, percent).
local LINE = '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)'

local function int(x)
  return string.format('%.0f', x)
end

-- One line from its packed string and window key.
local function line_of(packed, w)
  local id, idx, ln, lt, lr, enf, susp, exp, th = string.match(packed, LINE)
  return {
    w = w, p = packed,
    id = id, idx = idx, ln = ln, lt = lt, lr = lr, enf = enf, susp = susp, exp = exp, th = th,
  }
end

-- The line's suspended-flag key, or its alerts key: built only when needed, since every
-- string Lua builds costs time on the hot path.
local function side_key(line, what)
  local base = string.match(line.w, '^(.*}):w:')
  if what == 'susp' then
    return base .. ':susp:' .. line.id
  end
  return base .. ':alerts'
end

-- Lines from KEYS starting at `k0` and ARGV starting at `a0`.
local function read_lines(n, k0, a0)
  local lines = {}
  for i = 1, n do
    lines[i] = line_of(ARGV[a0 + i - 1], KEYS[k0 + i - 1])
  end
  return lines
end

-- A reservation record: "cost|tokens" then, per line, "\n<packed>|<window key>".
local function encode_record(cost, tokens, lines)
  local parts = { cost .. '|' .. tokens }
  for i, line in ipairs(lines) do
    parts[i + 1] = line.p .. '|' .. line.w
  end
  return table.concat(parts, '\n')
end

local function decode_record(rec)
  local d = { l = {} }
  for row in string.gmatch(rec, '[^\n]+') do
    if not d.c then
      d.c, d.t = string.match(row, '^(%d+)|(%d+)$')
    else
      local packed, w = string.match(row, '^(' .. string.rep('[^|]*|', 8) .. '[^|]*)|(.*)$')
      d.l[#d.l + 1] = line_of(packed, w)
    end
  end
  return d
end

-- A window's counters {spent, rsv, tok, rtok, req, thr} from its stored value (false = none).
local function parse(v)
  if not v then
    return { 0, 0, 0, 0, 0, 0 }
  end
  local a, b, c, d, e, f = string.match(v, '^(%-?%d+):(%-?%d+):(%-?%d+):(%-?%d+):(%-?%d+):(%d+)$')
  return { tonumber(a) or 0, tonumber(b) or 0, tonumber(c) or 0, tonumber(d) or 0,
    tonumber(e) or 0, tonumber(f) or 0 }
end

-- MGET of `first` followed by every line's window: returns first's value, counters per line,
-- and which windows are new (no key yet).
local function read_windows(first, lines)
  local keys = { first }
  for i, line in ipairs(lines) do
    keys[i + 1] = line.w
  end
  local v = redis.call('MGET', unpack(keys))
  local cs, fresh = {}, {}
  for i = 1, #lines do
    cs[i], fresh[i] = parse(v[i + 1]), not v[i + 1]
  end
  return v[1], cs, fresh
end

local function write(line, c, new)
  -- One format call: building the value piece by piece cost more than the SET itself.
  local v = string.format('%.0f:%.0f:%.0f:%.0f:%.0f:%.0f', c[1], c[2], c[3], c[4], c[5], c[6])
  if not new then
    redis.call('SET', line.w, v, 'KEEPTTL')
  elseif line.exp ~= '' then
    -- A new window gets its expiry once: window end + grace, so no job ever resets it.
    redis.call('SET', line.w, v, 'PXAT', line.exp)
  else
    redis.call('SET', line.w, v)
  end
end

-- Whether settled usage reached `pct` percent of any limit.
local function reached(line, c, pct)
  local function at(used, limit)
    return limit ~= '' and used * 100 >= pct * tonumber(limit)
  end
  return at(c[1], line.ln) or at(c[3], line.lt) or at(c[5], line.lr)
end

-- Takes a reservation's hold off its windows (a window reset or expired since is left alone).
local function release(d)
  local c, t = tonumber(d.c), tonumber(d.t)
  for _, l in ipairs(d.l) do
    local v = redis.call('GET', l.w)
    if v then
      local w = parse(v)
      w[2], w[4] = math.max(0, w[2] - c), math.max(0, w[4] - t)
      write(l, w, false)
    end
  end
end
