-- settle.lua: replace one call's reservation with its actual charge, exactly once.
--
-- Why one script: "already settled?", the release of the reservation, the charge on every
-- window, the threshold alerts and the settled marker must be one step, or a replayed batch
-- racing the original could charge twice, and a crash between steps could leak a reservation.
--
-- KEYS[1]                         reservation record   <p>:{<org>}:r:<request_id>
-- KEYS[2 + 4(i-1) .. 5 + 4(i-1)]  fallback line i's 4 keys (see common.lua), used only when
--                                 there is no record: a fail-open admission, or a record
--                                 long expired. With a record, its own lines are charged.
-- ARGV[1] request_id  ARGV[2] cost_nanos  ARGV[3] tokens  ARGV[4] now_ms
-- ARGV[5] dedupe ttl ms (how long the settled marker blocks replays)  ARGV[6] n fallback lines
-- ARGV[7 + 9(i-1) ..]             fallback line i's 9 values
--
-- Returns {'dup'}, or {'ok', then budget_id, window_index, threshold_pct, spent for each
-- threshold crossed by this charge}.
local cost, tokens, now = ARGV[2], ARGV[3], ARGV[4]
local rec = redis.call('GET', KEYS[1])
if rec == 'settled' then
  return { 'dup' }
end
local lines, member, rcost, rtok
if rec then
  local d = cjson.decode(rec)
  lines, member, rcost, rtok = d.l, d.m, d.c, d.t
else
  lines = read_lines(tonumber(ARGV[6]), 2, 7)
end
local out = { 'ok' }
for _, line in ipairs(lines) do
  if member then
    -- A reservation already released by expiry frees nothing, and still charges below.
    if redis.call('ZREM', line.z, member) == 1 then
      redis.call('HINCRBY', line.w, 'rsv', -tonumber(rcost))
      redis.call('HINCRBY', line.w, 'rtok', -tonumber(rtok))
    end
  else
    -- No reservation counted this request.
    redis.call('HINCRBY', line.w, 'req', 1)
  end
  redis.call('HINCRBY', line.w, 'spent', cost)
  redis.call('HINCRBY', line.w, 'tok', tokens)
  expire(line)
  local c = counters(line.w)
  local top = c[6]
  for t in string.gmatch(line.th, '%d+') do
    local pct = tonumber(t)
    if pct > c[6] and reached(line, c, pct) then
      top = pct
      redis.call('LPUSH', line.al, line.id .. '|' .. line.idx .. '|' .. t .. '|' .. c[1] .. '|' .. now)
      redis.call('LTRIM', line.al, 0, 999)
      for _, x in ipairs({ line.id, line.idx, t, c[1] }) do
        out[#out + 1] = x
      end
    end
  end
  if top > c[6] then
    redis.call('HSET', line.w, 'thr', top)
  end
  if line.susp == '1' and reached(line, c, 100) then
    redis.call('SET', line.s, '1')
  end
end
redis.call('SET', KEYS[1], 'settled', 'PX', ARGV[5])
return out
