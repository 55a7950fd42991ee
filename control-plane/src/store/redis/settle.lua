-- settle.lua: replace one call's reservation with its actual charge, exactly once.
--
-- Why one script: "already settled?", the release of the reservation, the charge on every
-- window, the threshold alerts and the settled marker must be one step, or a replayed batch
-- racing the original could charge twice, and a crash between steps could leak a reservation.
--
-- KEYS[1]                         reservation record   <p>:{<org>}:r:<request_id>
-- KEYS[2]                         reservation expiries <p>:{<org>}:exp
-- KEYS[2 + i]                    fallback line i's window key (see common.lua), used only when
--                                 there is no record: a fail-open admission, or a record
--                                 long expired. With a record, its own lines are charged.
-- ARGV[1] request_id  ARGV[2] cost_nanos  ARGV[3] tokens  ARGV[4] now_ms
-- ARGV[5] dedupe ttl ms (how long the settled marker blocks replays)  ARGV[6] n fallback lines
-- ARGV[6 + i]                    fallback line i's packed values
--
-- Returns {'dup'}, or {'ok', then budget_id, window_index, threshold_pct, spent for each
-- threshold crossed by this charge}.
local cost, tokens, now = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local fallback = read_lines(tonumber(ARGV[6]), 3, 7)
local rec, cs, fresh = read_windows(KEYS[1], fallback)
if rec == 'settled' then
  return { 'dup' }
end
local lines, held, rcost, rtok = fallback, false, 0, 0
if rec then
  local d = decode_record(rec)
  lines, rcost, rtok = d.l, tonumber(d.c), tonumber(d.t)
  -- Still held (not yet released by expiry)? Then its hold comes off as it is charged.
  held = redis.call('ZREM', KEYS[2], ARGV[1]) == 1
  local _
  _, cs, fresh = read_windows(KEYS[1], lines)
end
local out = { 'ok' }
for i, line in ipairs(lines) do
  local c = cs[i]
  if held then
    c[2], c[4] = math.max(0, c[2] - rcost), math.max(0, c[4] - rtok)
  elseif not rec then
    -- No reservation ever counted this request.
    c[5] = c[5] + 1
  end
  c[1], c[3] = c[1] + cost, c[3] + tokens
  local before = c[6]
  for t in string.gmatch(line.th, '%d+') do
    local pct = tonumber(t)
    if pct > before and reached(line, c, pct) then
      c[6] = pct
      redis.call('LPUSH', side_key(line, 'alerts'), line.id .. '|' .. line.idx .. '|' .. t .. '|' .. int(c[1]) .. '|' .. now)
      redis.call('LTRIM', side_key(line, 'alerts'), 0, 999)
      out[#out + 1] = line.id
      out[#out + 1] = line.idx
      out[#out + 1] = t
      out[#out + 1] = c[1]
    end
  end
  write(line, c, fresh[i])
  if line.susp == '1' and reached(line, c, 100) then
    redis.call('SET', side_key(line, 'susp'), '1')
  end
end
redis.call('SET', KEYS[1], 'settled', 'PX', ARGV[5])
return out
