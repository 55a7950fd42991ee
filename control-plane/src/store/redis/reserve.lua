-- reserve.lua: check and reserve one call's estimate on every budget window that matches it.
--
-- Why one script: the check ("would this pass the limit?") and the reservation must happen
-- with nothing in between, across ALL matching budgets, or two concurrent calls could both
-- take the last dollar, or a call could reserve on one budget and then be refused by another.
--
-- KEYS[1]                         reservation record   <p>:{<org>}:r:<request_id>
-- KEYS[2]                         reservation expiries <p>:{<org>}:exp  (zset rid → expiry ms)
-- KEYS[2 + i]                    line i's window key (see common.lua)
-- ARGV[1] request_id   ARGV[2] cost_nanos   ARGV[3] tokens   ARGV[4] now_ms
-- ARGV[5] reservation expires at (Unix ms)  ARGV[6] record ttl ms  ARGV[7] n lines
-- ARGV[7 + i]                    line i's packed values (see common.lua)
--
-- Returns {'dup'} when the request id already has a record (nothing changes);
-- {'deny', i, reason, spent, rsv, tok, rtok, req, thr} when line i refuses (nothing is
-- reserved; a suspend_on_exceed budget becomes suspended);
-- {'ok', shadow_over_csv, then spent, rsv, tok, rtok, req, thr for each line after reserving}.
--
-- Redis calls on the common path: MGET, ZRANGEBYSCORE, one SET per line, ZADD, SET.
local rid, cost, tokens, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
-- Reservations release themselves: the expired ones are taken off their windows here, a
-- few per call, before anything is read. Their records stay for late settlements.
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 8)
if #gone > 0 then
  local record_prefix = string.sub(KEYS[1], 1, #KEYS[1] - #rid)
  for _, old in ipairs(gone) do
    local rec = redis.call('GET', record_prefix .. old)
    if rec and rec ~= 'settled' then
      release(decode_record(rec))
    end
  end
  redis.call('ZREM', KEYS[2], unpack(gone))
end
local lines = read_lines(tonumber(ARGV[7]), 3, 8)
local rec, cs, fresh = read_windows(KEYS[1], lines)
if rec then
  return { 'dup' }
end
local shadow_over = {}
for i, line in ipairs(lines) do
  local c = cs[i]
  local reason = nil
  if line.susp == '1' and redis.call('EXISTS', side_key(line, 'susp')) == 1 then
    reason = 'suspended'
  elseif line.lr ~= '' and c[5] + 1 > tonumber(line.lr) then
    reason = 'requests'
  elseif line.ln ~= '' and c[1] + c[2] + cost > tonumber(line.ln) then
    reason = 'usd'
  elseif line.lt ~= '' and c[3] + c[4] + tokens > tonumber(line.lt) then
    reason = 'tokens'
  end
  if reason then
    if line.enf == '1' then
      if line.susp == '1' then
        redis.call('SET', side_key(line, 'susp'), '1')
      end
      return { 'deny', i, reason, c[1], c[2], c[3], c[4], c[5], c[6] }
    end
    shadow_over[#shadow_over + 1] = tostring(i)
  end
end
local out = { 'ok', table.concat(shadow_over, ',') }
for i, line in ipairs(lines) do
  local c = cs[i]
  c[2], c[4], c[5] = c[2] + cost, c[4] + tokens, c[5] + 1
  write(line, c, fresh[i])
  for j = 1, 6 do
    out[#out + 1] = c[j]
  end
end
redis.call('ZADD', KEYS[2], ARGV[5], rid)
-- The record lets settle find these windows again, even after the window rolls over.
redis.call('SET', KEYS[1], encode_record(ARGV[2], ARGV[3], lines), 'PX', ARGV[6])
return out
