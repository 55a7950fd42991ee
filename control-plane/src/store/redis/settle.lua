-- settle.lua: replace calls' reservations with their actual charges, each exactly once. One
-- call settles a batch of settlements of one org (one hash tag): the script's fixed cost (the
-- command, its argument tables, the round trip) is paid once per batch, not per settlement.
--
-- Why one script: "already settled?", the release of the reservation, the charge on every
-- window, the threshold alerts and the settled marker must be one step, or a replayed batch
-- racing the original could charge twice, and a crash between steps could leak a reservation.
--
-- KEYS[1]        reservation expiries <p>:{<org>}:exp
-- KEYS[2]        the org's ledger record stream (ledger.lua)
-- then per settlement: its reservation record <p>:{<org>}:r:<request_id>, then its lines'
--                window keys (the budgets matching the settlement now)
-- ARGV[1] now_ms  ARGV[2] dedupe ttl ms (how long the settled marker blocks replays)
-- ARGV[3], ARGV[4] the batch's ledger records and entry id (ledger.lua)
-- then per settlement: request_id, cost_nanos, tokens, number of lines n, the lines'
--                signature (their window keys joined by " "), then 7 per line:
--                expire_at_ms, suspend_on_exceed ('1'/'0'), limit_nanos, limit_tokens,
--                limit_requests ('' = none), "<budget_id>|<window_index>", thresholds csv
--                (ascending; '' = none)
--
-- Which windows are charged: with a record, the windows it reserved on (even if a new window
-- has begun since); without one (a fail-open admission, or a record long gone), the given
-- lines. When the record's signature equals the given one (the common case) the given lines
-- are used as they are, and the record's own lines are never parsed: Lua pattern matching
-- over the record was half of this script's cost.
--
-- Returns, per settlement in order: 'dup', or 'ok' and the number m of thresholds crossed by
-- its charge, then m times "<budget_id>|<window_index>", threshold_pct, spent.
--
-- Redis calls per settlement on the common path: SET ... GET (writes the settled marker and
-- returns the record in one call), ZREM, one BITFIELD per window.
local now = ARGV[1]
local out = {}

-- Charges window w with cost/tokens, taking nc/nt (the negated hold, or '0') off its
-- reserved counters; `counted`: the reservation already counted the request. Appends the
-- thresholds the charge crossed to `alerts` (and the alerts list) and suspends a
-- suspend_on_exceed budget whose limit settled usage reached.
local function charge(w, exp, susp, ln, lt, lr, who, th, cost, tokens, nc, nt, counted, alerts)
  local c
  if counted then
    -- Read, don't write, the request counter.
    c = redis.call('BITFIELD', w, 'OVERFLOW', 'SAT', 'INCRBY', 'i64', '#0', cost,
      'INCRBY', 'i64', '#1', nc, 'INCRBY', 'i64', '#2', tokens, 'INCRBY', 'i64', '#3', nt,
      'GET', 'i64', '#4', 'GET', 'i64', '#5')
  else
    c = redis.call('BITFIELD', w, 'OVERFLOW', 'SAT', 'INCRBY', 'i64', '#0', cost,
      'INCRBY', 'i64', '#1', nc, 'INCRBY', 'i64', '#2', tokens, 'INCRBY', 'i64', '#3', nt,
      'INCRBY', 'i64', '#4', '1', 'GET', 'i64', '#5')
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
        local list = side_key(w, 'alerts')
        redis.call('LPUSH', list, who .. '|' .. t .. '|' .. int(spent) .. '|' .. now)
        redis.call('LTRIM', list, 0, 999)
        alerts[#alerts + 1] = who
        alerts[#alerts + 1] = t
        alerts[#alerts + 1] = reply(spent)
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

local k, a = 3, 5
local applied, dups, pos = 0, {}, 0
while a <= #ARGV do
  local rid, cost, tokens, n = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local rec = redis.call('SET', KEYS[k], 'settled', 'PX', ARGV[2], 'GET')
  if rec == 'settled' then
    out[#out + 1] = 'dup'
    dups[#dups + 1] = pos
  else
    applied = applied + 1
    local nc, nt, counted, rows = '0', '0', false, nil
    if rec then
      local sig, e1
      nc, nt, sig, e1 = decode_record(rec)
      -- Still held (not yet released by expiry)? Then its hold comes off as it is charged.
      if redis.call('ZREM', KEYS[1], rid) == 0 then
        nc, nt = '0', '0'
      end
      counted = true
      if sig ~= ARGV[a + 4] then
        rows = record_lines(rec, e1)
      end
    end
    local alerts = {}
    if rows then
      for _, l in ipairs(rows) do
        if l.d then
          charge(l.w, l.exp, l.susp, l.ln, l.lt, l.lr, l.id .. '|' .. l.idx, l.th,
            cost, tokens, nc, nt, counted, alerts)
        else
          charge(l.w, l.exp, '0', '', '', '', '', '', cost, tokens, nc, nt, counted, alerts)
        end
      end
    else
      for i = 1, n do
        local b = a + 7 * i - 2
        charge(KEYS[k + i], ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4],
          ARGV[b + 5], ARGV[b + 6], cost, tokens, nc, nt, counted, alerts)
      end
    end
    out[#out + 1] = 'ok'
    out[#out + 1] = #alerts / 3
    for _, v in ipairs(alerts) do
      out[#out + 1] = v
    end
  end
  k, a, pos = k + 1 + n, a + 5 + 7 * n, pos + 1
end
ledger_write(applied, dups)
return out
