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
-- KEYS[3..2+w]   the batch's windows, each once (the budgets matching its settlements now)
-- then per settlement: its reservation record <p>:{<org>}:r:<request_id>
-- ARGV[1] now_ms  ARGV[2] dedupe ttl ms (how long the settled marker blocks replays)
-- ARGV[3], ARGV[4] the batch's ledger records and entry id (ledger.lua)
-- ARGV[5] w, then 7 per window: expire_at_ms, suspend_on_exceed ('1'/'0'), limit_nanos,
--                limit_tokens, limit_requests ('' = none), "<budget_id>|<window_index>",
--                thresholds csv (ascending; '' = none)
-- then per settlement: request_id, cost_nanos, tokens, number of lines n, then its n
--                windows' numbers (1..w). A window's line is passed once per batch, not once
--                per settlement: every argument costs Redis a string object and Lua an
--                interned string, and a batch's settlements share a few windows.
--
-- Which windows are charged: with a record, the windows it reserved on (even if a new window
-- has begun since); without one (a fail-open admission, or a record long gone), the given
-- lines. When the record's signature (its window keys joined by " ") equals the given
-- lines' (the common case) the given lines are used as they are, and the record's own lines
-- are never parsed: Lua pattern matching over the record was half of this script's cost.
--
-- Returns, per settlement in order: 'dup', or 'ok' and the number m of thresholds crossed by
-- its charge, then m times "<budget_id>|<window_index>", threshold_pct, spent. A window's
-- thresholds are checked once, after the whole batch's charges on it: the ones crossed are
-- listed under the last settlement applied to it, with the window's spend after the batch.
--
-- One BITFIELD per window per batch, not per settlement: a gateway's batch charges the same
-- few windows over and over (every leased call of a key charges the same ones), and a
-- BITFIELD cost as much as the rest of a settlement put together (each redis.call converts
-- its arguments and reply; BITFIELD has 15). The batch's amounts on a window are summed here
-- exactly (below), then added in one call: the same sums the per-settlement calls reached
-- (OVERFLOW SAT saturates the same way for amounts of one sign; a hold taken off a window
-- reset since is clamped to zero once at the end, which is where clamping after each step
-- also ends).
--
-- Redis calls per settlement on the common path: SET ... GET (writes the settled marker and
-- returns the record in one call), ZREM when it had a reservation; per window of the batch,
-- one BITFIELD.
local now = ARGV[1]
local out = {}

-- Exact sums of decimal amounts: Lua numbers are doubles, exact for integers below 2^53. A
-- sum is a number `n` (always below 2^53 in size) and a list `big` of decimal strings: an
-- amount of 2^53 or more, or the running number when the next addition could leave the
-- exact range, goes to `big` as its own BITFIELD increment (Redis adds those in i64).
local EXACT = 9007199254740992

local function sum_new()
  return { n = 0, big = {} }
end

local function sum_add(s, x)
  if x == '0' or x == '' then
    return
  end
  local v = tonumber(x)
  if v >= EXACT or v <= -EXACT then
    s.big[#s.big + 1] = x
    return
  end
  if math.abs(s.n) + math.abs(v) >= EXACT then
    s.big[#s.big + 1] = string.format('%.0f', s.n)
    s.n = 0
  end
  s.n = s.n + v
end

-- Appends the BITFIELD increments of `s` on `field` to `args`; the last one's result is the
-- field's value after them all. Returns the number of operations added.
local function sum_ops(args, field, s)
  for _, b in ipairs(s.big) do
    args[#args + 1] = 'INCRBY'
    args[#args + 1] = 'i64'
    args[#args + 1] = field
    args[#args + 1] = b
  end
  args[#args + 1] = 'INCRBY'
  args[#args + 1] = 'i64'
  args[#args + 1] = field
  -- %.0f of a negative zero is "-0", which BITFIELD refuses.
  args[#args + 1] = s.n == 0 and '0' or string.format('%.0f', s.n)
  return #s.big + 1
end

-- The batch's charges by window key, in the order first charged: the window's line
-- (expiry, suspend flag, limits, "<budget_id>|<index>", thresholds), the sums of cost, hold
-- released, tokens and token hold released, the requests not counted yet, and the position
-- of the last settlement charging it.
local windows, order = {}, {}

-- Adds one settlement's charge to window w's sums; `counted`: its reservation already
-- counted the request.
local function gather(w, exp, susp, ln, lt, lr, who, th, cost, tokens, nc, nt, counted, at)
  local g = windows[w]
  if not g then
    g = { exp = exp, susp = susp, ln = ln, lt = lt, lr = lr, who = who, th = th,
      cost = sum_new(), nc = sum_new(), tok = sum_new(), nt = sum_new(), req = 0 }
    windows[w] = g
    order[#order + 1] = w
  elseif g.who == '' and who ~= '' then
    -- A record's line without detail, then a given one with it: the detail counts.
    g.exp, g.susp, g.ln, g.lt, g.lr, g.who, g.th = exp, susp, ln, lt, lr, who, th
  end
  if g.exp == '' then
    g.exp = exp
  end
  sum_add(g.cost, cost)
  sum_add(g.nc, nc)
  sum_add(g.tok, tokens)
  sum_add(g.nt, nt)
  if not counted then
    g.req = g.req + 1
  end
  g.at = at
end

-- Charges window w with its batch's sums. Appends the thresholds the charge crossed to
-- `alerts` (and the alerts list) and suspends a suspend_on_exceed budget whose limit settled
-- usage reached.
local function charge(w, g, alerts)
  local args = { w, 'OVERFLOW', 'SAT' }
  local at = {}
  local ops = 0
  for i, s in ipairs({ g.cost, g.nc, g.tok, g.nt }) do
    ops = ops + sum_ops(args, '#' .. (i - 1), s)
    at[i] = ops
  end
  if g.req > 0 then
    args[#args + 1] = 'INCRBY'
    args[#args + 1] = 'i64'
    args[#args + 1] = '#4'
    args[#args + 1] = tostring(g.req)
  else
    -- Read, don't write, the request counter.
    args[#args + 1] = 'GET'
    args[#args + 1] = 'i64'
    args[#args + 1] = '#4'
  end
  args[#args + 1] = 'GET'
  args[#args + 1] = 'i64'
  args[#args + 1] = '#5'
  local c = redis.call('BITFIELD', unpack(args))
  local spent, rsv, tok, rtok = c[at[1]], c[at[2]], c[at[3]], c[at[4]]
  local req, thr = c[ops + 1], c[ops + 2]
  if rsv < 0 or rtok < 0 then
    -- The window was reset since the hold was taken.
    redis.call('BITFIELD', w, 'SET', 'i64', '#1', rsv < 0 and '0' or int(rsv),
      'SET', 'i64', '#3', rtok < 0 and '0' or int(rtok))
  end
  -- A window this batch created (the one reserved on ended or was reset) gets its expiry.
  if req <= math.max(g.req, 1) and g.exp ~= '' then
    redis.call('PEXPIREAT', w, g.exp)
  end
  if g.th ~= '' then
    local top = thr
    for t in string.gmatch(g.th, '%d+') do
      local pct = tonumber(t)
      if pct > thr then
        -- Ascending: the first threshold not reached ends the search.
        if not reached(spent, tok, req, pct, g.ln, g.lt, g.lr) then
          break
        end
        top = pct
        local list = side_key(w, 'alerts')
        redis.call('LPUSH', list, g.who .. '|' .. t .. '|' .. int(spent) .. '|' .. now)
        redis.call('LTRIM', list, 0, 999)
        alerts[#alerts + 1] = g.who
        alerts[#alerts + 1] = t
        alerts[#alerts + 1] = reply(spent)
      end
    end
    if top > thr then
      redis.call('BITFIELD', w, 'SET', 'i64', '#5', tostring(top))
    end
  end
  if g.susp == '1' and reached(spent, tok, req, 100, g.ln, g.lt, g.lr) then
    redis.call('SET', side_key(w, 'susp'), '1')
  end
end

-- The given lines' signature: settlement at ARGV[a]'s window keys joined by " ".
local function given_signature(a, n)
  local keys = {}
  for i = 1, n do
    keys[i] = KEYS[2 + tonumber(ARGV[a + 3 + i])]
  end
  return table.concat(keys, ' ')
end

local nw = tonumber(ARGV[5])
local k, a = 3 + nw, 6 + 7 * nw
local applied, dups, pos = 0, {}, 0
local dup_at = {}
while a <= #ARGV do
  local rid, cost, tokens, n = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local rec = redis.call('SET', KEYS[k], 'settled', 'PX', ARGV[2], 'GET')
  if rec == 'settled' then
    dups[#dups + 1] = pos
    dup_at[pos] = true
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
      if sig ~= given_signature(a, n) then
        rows = record_lines(rec, e1)
      end
    end
    if rows then
      for _, l in ipairs(rows) do
        if l.d then
          gather(l.w, l.exp, l.susp, l.ln, l.lt, l.lr, l.id .. '|' .. l.idx, l.th,
            cost, tokens, nc, nt, counted, pos)
        else
          gather(l.w, l.exp, '0', '', '', '', '', '', cost, tokens, nc, nt, counted, pos)
        end
      end
    else
      for i = 1, n do
        local wi = tonumber(ARGV[a + 3 + i])
        local b = 6 + 7 * (wi - 1)
        gather(KEYS[2 + wi], ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4],
          ARGV[b + 5], ARGV[b + 6], cost, tokens, nc, nt, counted, pos)
      end
    end
  end
  k, a, pos = k + 1, a + 4 + n, pos + 1
end

-- The windows' charges; each window's alerts go to the last settlement charging it.
local alerts_at = {}
for _, w in ipairs(order) do
  local g = windows[w]
  local list = alerts_at[g.at] or {}
  charge(w, g, list)
  alerts_at[g.at] = list
end
for p = 0, pos - 1 do
  if dup_at[p] then
    out[#out + 1] = 'dup'
  else
    local alerts = alerts_at[p] or {}
    out[#out + 1] = 'ok'
    out[#out + 1] = #alerts / 3
    for _, v in ipairs(alerts) do
      out[#out + 1] = v
    end
  end
end
ledger_write(applied, dups)
return out
