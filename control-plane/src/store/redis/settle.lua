-- settle.lua: replace one call's reservation with its actual charge, exactly once.
--
-- Why one script: "already settled?", the release of the reservation, the charge on every
-- window, the threshold alerts and the settled marker must be one step, or a replayed batch
-- racing the original could charge twice, and a crash between steps could leak a reservation.
--
-- KEYS[1]        reservation record   <p>:{<org>}:r:<request_id>
-- KEYS[2]        reservation expiries <p>:{<org>}:exp
-- KEYS[2 + i]    fallback line i's window key, used only when there is no record: a
--                fail-open admission, or a record long expired. With a record, its own
--                lines are charged.
-- ARGV[1] request_id  ARGV[2] cost_nanos  ARGV[3] tokens  ARGV[4] now_ms
-- ARGV[5] dedupe ttl ms (how long the settled marker blocks replays)  ARGV[6] n fallback lines
-- ARGV[6 + i]    fallback line i (see common.lua)
--
-- Returns {'dup'}, or {'ok', then budget_id, window_index, threshold_pct, spent for each
-- threshold crossed by this charge}.
--
-- Redis calls on the common path: SET ... GET (writes the settled marker and returns the
-- record in one call), ZREM, one BITFIELD per window.
local now = ARGV[4]
local rec = redis.call('SET', KEYS[1], 'settled', 'PX', ARGV[5], 'GET')
if rec == 'settled' then
  return { 'dup' }
end
local lines, nc, nt, held, req_add = nil, '0', '0', false, '1'
if rec then
  nc, nt, lines = decode_record(rec)
  -- Still held (not yet released by expiry)? Then its hold comes off as it is charged.
  held = redis.call('ZREM', KEYS[2], ARGV[1]) == 1
  if not held then
    nc, nt = '0', '0'
  end
  -- A reservation already counted the request.
  req_add = '0'
else
  lines = {}
  for i = 1, tonumber(ARGV[6]) do
    lines[i] = line_of(ARGV[6 + i])
  end
end
local out = { 'ok' }
for _, l in ipairs(lines) do
  local c = redis.call('BITFIELD', l.w, 'INCRBY', 'i64', '#0', ARGV[2], 'INCRBY', 'i64', '#1', nc,
    'INCRBY', 'i64', '#2', ARGV[3], 'INCRBY', 'i64', '#3', nt, 'INCRBY', 'i64', '#4', req_add,
    'GET', 'i64', '#5')
  local spent, rsv, tok, rtok, req, thr = c[1], c[2], c[3], c[4], c[5], c[6]
  if rsv < 0 or rtok < 0 then
    -- The window was reset since the hold was taken.
    redis.call('BITFIELD', l.w, 'SET', 'i64', '#1', rsv < 0 and '0' or int(rsv),
      'SET', 'i64', '#3', rtok < 0 and '0' or int(rtok))
  end
  -- A window this charge created (the one reserved on ended or was reset) gets its expiry.
  if req <= 1 and l.exp ~= '' then
    redis.call('PEXPIREAT', l.w, l.exp)
  end
  if l.d then
    local top = thr
    for t in string.gmatch(l.th, '%d+') do
      local pct = tonumber(t)
      if pct > thr and reached(l, spent, tok, req, pct) then
        top = pct
        local alerts = side_key(l.w, 'alerts')
        redis.call('LPUSH', alerts, l.id .. '|' .. l.idx .. '|' .. t .. '|' .. int(spent) .. '|' .. now)
        redis.call('LTRIM', alerts, 0, 999)
        out[#out + 1] = l.id
        out[#out + 1] = l.idx
        out[#out + 1] = t
        out[#out + 1] = spent
      end
    end
    if top > thr then
      redis.call('BITFIELD', l.w, 'SET', 'i64', '#5', tostring(top))
    end
    if l.susp == '1' and reached(l, spent, tok, req, 100) then
      redis.call('SET', side_key(l.w, 'susp'), '1')
    end
  end
end
return out
