-- Shared by reserve.lua and settle.lua (prepended to each when the script is loaded).
--
-- Cost model (measured on the 2-core dev VM, Redis 7.0): an empty EVALSHA costs ~0.9 us of
-- Redis CPU, each redis.call ~0.8-1 us, each string.format('%.0f') of a counter ~0.45 us and
-- each tonumber of one ~0.15 us. So the scripts never format or parse a counter:
--
-- A window is ONE string key holding seven signed 64-bit big-endian integers, changed and
-- read with BITFIELD (one call per window, arguments passed as the ARGV strings they already
-- are, results returned to Lua as numbers with no parsing):
--   #0 spent (nanos)  #1 rsv (reserved nanos)  #2 tok  #3 rtok (reserved tokens)
--   #4 req (requests) #5 thr (highest threshold crossed, percent)
--   #6 rreq (requests held by leases; lease.lua)
-- A missing window reads as zeros (and a six-field value, written before leases, as rreq 0).
-- Every window that exists has req >= 1, spent/tok > 0 or a lease's hold (rsv, rtok or
-- rreq > 0), so all of them zero after an update means the update created the key.
--
-- Numbers: Lua numbers are doubles, exact for integers below 2^53. Limits are capped at
-- 2^53 - 1 nano-USD by the API; Redis does the additions in 64-bit integers itself.
--
-- Overflow: every BITFIELD that adds starts with OVERFLOW SAT (BITFIELD's default is WRAP:
-- two huge settles would make `spent` negative and let the next reserve through). A counter
-- saturates at the i64 bounds, as the memory store's do. A saturated counter read into Lua
-- is 2^63 as a double, which Redis would turn into i64::MIN in a reply: every counter a
-- script returns or formats goes through `reply` / `int`, which give the bound instead.
--
-- A line, as stored in a reservation record and passed as a settle fallback line, is one
-- string "<window key>|<expire_at_ms>|<d>|<detail>", d = 1 when detail matters (the budget
-- has thresholds or suspend_on_exceed), detail = "susp|limit_nanos|limit_tokens|
-- limit_requests|budget_id|window_index|thresholds_csv" ('' = none). Detail is parsed only
-- when d = 1. Its suspended flag <p>:{tag}:susp:<budget_id> and alerts list <p>:{tag}:alerts
-- are derived from the window key <p>:{tag}:w:<budget_id>:<index> (side_key), so they share
-- its slot.

local I64_MAX, I64_MIN = '9223372036854775807', '-9223372036854775808'

-- A counter as a reply value: a number, or the i64 bound as a string when it is past it.
local function reply(x)
  if x >= 9223372036854775807 then
    return I64_MAX
  elseif x <= -9223372036854775808 then
    return I64_MIN
  end
  return x
end

local function int(x)
  local r = reply(x)
  if type(r) == 'string' then
    return r
  end
  return string.format('%.0f', r)
end

-- The suspended-flag key (what = 'susp') or the alerts key of the window key `w`: built
-- only when needed, since every string Lua builds costs time on the hot path.
local function side_key(w, what)
  local base, id = string.match(w, '^(.*}):w:(.*):[^:]*$')
  if what == 'susp' then
    return base .. ':susp:' .. id
  end
  return base .. ':alerts'
end

-- One line {w, exp, d, susp, ln, lt, lr, id, idx, th} from its string.
local function line_of(s)
  local w, exp, d, rest = string.match(s, '^([^|]*)|([^|]*)|([^|]*)|?(.*)$')
  local l = { w = w, exp = exp, d = d == '1' }
  if l.d then
    l.susp, l.ln, l.lt, l.lr, l.id, l.idx, l.th =
      string.match(rest, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
  end
  return l
end

-- A reservation record (written by Rust): "<-cost>|<-tokens>|<sig>" then "\n<line>" per
-- window: the amounts to take off again, the signature of its windows (their keys joined by
-- " ", which settle compares with the signature of the lines it was given, so that the
-- common settle parses no line at all), then one line per window. The signature sits on the
-- first line, after the amounts, because the previous release's scripts read exactly
-- "<-cost>|<-tokens" there and a line after each "\n": a rollback or a mixed-version deploy
-- still settles and releases these records (tests/redis_records.rs runs those scripts).
-- A record that release wrote ("<-cost>|<-tokens" then lines, kept up to the record TTL) has
-- no signature (nil): its lines are always parsed.
-- Returns the amounts, the signature, and where the first line ends.
local function decode_record(rec)
  local e1 = string.find(rec, '\n', 1, true) or (#rec + 1)
  local b1 = string.find(rec, '|', 1, true)
  local b2 = string.find(rec, '|', b1 + 1, true)
  if b2 and b2 < e1 then
    return string.sub(rec, 1, b1 - 1), string.sub(rec, b1 + 1, b2 - 1),
      string.sub(rec, b2 + 1, e1 - 1), e1
  end
  return string.sub(rec, 1, b1 - 1), string.sub(rec, b1 + 1, e1 - 1), nil, e1
end

-- The lines of a record, from where its first line ends (see decode_record).
local function record_lines(rec, e1)
  local lines = {}
  for row in string.gmatch(string.sub(rec, e1 + 1), '[^\n]+') do
    lines[#lines + 1] = line_of(row)
  end
  return lines
end

-- The decimal string of -x for an amount string x ("0" stays "0": BITFIELD refuses "-0").
local function neg(x)
  if string.sub(x, 1, 1) == '-' then
    return string.sub(x, 2)
  elseif x == '0' then
    return x
  end
  return '-' .. x
end

-- A window the last update created (it did not exist) is deleted again; negative holds
-- (a hold released from a window reset since) are clamped to zero. A window that only
-- leases hold has no spend or request yet but holds something (#1, #3 or #6): it stays.
local function tidy(w, spent, rsv, tok, rtok, req)
  if spent == 0 and tok == 0 and req == 0 and rsv <= 0 and rtok <= 0
    and redis.call('BITFIELD', w, 'GET', 'i64', '#6')[1] <= 0 then
    redis.call('DEL', w)
  elseif rsv < 0 or rtok < 0 then
    redis.call('BITFIELD', w, 'SET', 'i64', '#1', rsv < 0 and '0' or int(rsv),
      'SET', 'i64', '#3', rtok < 0 and '0' or int(rtok))
  end
end

-- Takes a reservation's hold off its windows (a window reset or expired since is left alone).
local function release(rec)
  local nc, nt, _, e1 = decode_record(rec)
  for _, l in ipairs(record_lines(rec, e1)) do
    local r = redis.call('BITFIELD', l.w, 'OVERFLOW', 'SAT', 'GET', 'i64', '#0',
      'INCRBY', 'i64', '#1', nc, 'GET', 'i64', '#2', 'INCRBY', 'i64', '#3', nt, 'GET', 'i64', '#4')
    tidy(l.w, r[1], r[2], r[3], r[4], r[5])
  end
end

-- Whether settled usage reached `pct` percent of any limit ('' = none).
local function reached(spent, tok, req, pct, ln, lt, lr)
  return (ln ~= '' and spent * 100 >= pct * tonumber(ln))
    or (lt ~= '' and tok * 100 >= pct * tonumber(lt))
    or (lr ~= '' and req * 100 >= pct * tonumber(lr))
end
