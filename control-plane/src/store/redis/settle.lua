-- settle.lua: replace one call's reservation with its actual charge, exactly once.
--
-- Why one script: "already settled?", the release of the reservation, the charge on every
-- window, the threshold alerts and the settled marker must be one step, or a replayed batch
-- racing the original could charge twice, and a crash between steps could leak a reservation.
--
-- KEYS[1]        reservation record   <p>:{<org>}:r:<request_id>
-- KEYS[2]        reservation expiries <p>:{<org>}:exp
-- KEYS[2 + i]    line i's window key: the budgets matching the settlement now
-- ARGV[1] request_id  ARGV[2] cost_nanos  ARGV[3] tokens  ARGV[4] now_ms
-- ARGV[5] dedupe ttl ms (how long the settled marker blocks replays)
-- ARGV[6] the lines' signature (their window keys joined by "\n")
-- ARGV[7i .. 7i + 6]  line i: expire_at_ms, suspend_on_exceed ('1'/'0'), limit_nanos,
--                limit_tokens, limit_requests ('' = none), "<budget_id>|<window_index>",
--                thresholds csv (ascending; '' = none)
--
-- Which windows are charged: with a record, the windows it reserved on (even if a new window
-- has begun since); without one (a fail-open admission, or a record long gone), the given
-- lines. When the record's signature equals the given one (the common case) the given lines
-- are used as they are, and the record's own lines are never parsed: Lua pattern matching
-- over the record was half of this script's cost.
--
-- Returns {'dup'}, or {'ok', then "<budget_id>|<window_index>", threshold_pct, spent for
-- each threshold crossed by this charge}.
--
-- Redis calls on the common path: SET ... GET (writes the settled marker and returns the
-- record in one call), ZREM, one BITFIELD per window.
local now = ARGV[4]
local rec = redis.call('SET', KEYS[1], 'settled', 'PX', ARGV[5], 'GET')
if rec == 'settled' then
  return { 'dup' }
end
local nc, nt, counted = '0', '0', false
local rows = nil
if rec then
  local sig, e2
  nc, nt, sig, e2 = decode_record(rec)
  -- Still held (not yet released by expiry)? Then its hold comes off as it is charged.
  if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then
    nc, nt = '0', '0'
  end
  -- A reservation already counted the request.
  counted = true
  if sig ~= ARGV[6] then
    rows = record_lines(rec, e2)
  end
end
local out = { 'ok' }

-- Charges window w; pushes the thresholds the charge crossed (out, alerts list) and
-- suspends a suspend_on_exceed budget whose limit settled usage reached.
local function charge(w, exp, susp, ln, lt, lr, who, th)
  local c
  if counted then
    -- The reservation counted the request: read, don't write, the request counter.
    c = redis.call('BITFIELD', w, 'INCRBY', 'i64', '#0', ARGV[2], 'INCRBY', 'i64', '#1', nc,
      'INCRBY', 'i64', '#2', ARGV[3], 'INCRBY', 'i64', '#3', nt, 'GET', 'i64', '#4',
      'GET', 'i64', '#5')
  else
    c = redis.call('BITFIELD', w, 'INCRBY', 'i64', '#0', ARGV[2], 'INCRBY', 'i64', '#1', nc,
      'INCRBY', 'i64', '#2', ARGV[3], 'INCRBY', 'i64', '#3', nt, 'INCRBY', 'i64', '#4', '1',
      'GET', 'i64', '#5')
  end
  local spent, rsv, tok, rtok, req, thr = c[1], c[2], c[3], c[4], c[5], c[6]
  if rsv < 0 or rtok < 0 then
    -- The window was reset since the hold was taken.
    redis.call('BITFIELD', w, 'SET', 'i64', '#1', rsv < 0 and '0' or int(rsv),
      'SET', 'i64', '#3', rtok < 0 and '0' or int(rtok))
  end
  -- A window this charge created (the one reserved on ended or was reset) gets its expiry.
  if req <= 1 and exp ~= '' then
    redis.call('PEXPIREAT', w, exp)
  end
  if th ~= '' then
    local top = thr
    for t in string.gmatch(th, '%d+') do
      local pct = tonumber(t)
      if pct > thr then
        -- Ascending: the first threshold not reached ends the search.
        if not reached(spent, tok, req, pct, ln, lt, lr) then
          break
        end
        top = pct
        local alerts = side_key(w, 'alerts')
        redis.call('LPUSH', alerts, who .. '|' .. t .. '|' .. int(spent) .. '|' .. now)
        redis.call('LTRIM', alerts, 0, 999)
        out[#out + 1] = who
        out[#out + 1] = t
        out[#out + 1] = spent
      end
    end
    if top > thr then
      redis.call('BITFIELD', w, 'SET', 'i64', '#5', tostring(top))
    end
  end
  if susp == '1' and reached(spent, tok, req, 100, ln, lt, lr) then
    redis.call('SET', side_key(w, 'susp'), '1')
  end
end

if rows then
  for _, l in ipairs(rows) do
    if l.d then
      charge(l.w, l.exp, l.susp, l.ln, l.lt, l.lr, l.id .. '|' .. l.idx, l.th)
    else
      charge(l.w, l.exp, '0', '', '', '', '', '')
    end
  end
else
  for i = 1, #KEYS - 2 do
    local a = 7 * i
    charge(KEYS[2 + i], ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4],
      ARGV[a + 5], ARGV[a + 6])
  end
end
return out
