-- reserve.lua: check and reserve one call's estimate on every budget window that matches it.
--
-- Why one script: the check ("would this pass the limit?") and the reservation must happen
-- with nothing in between, across ALL matching budgets, or two concurrent calls could both
-- take the last dollar, or a call could reserve on one budget and then be refused by another.
--
-- KEYS[1]        reservation record   <p>:{<org>}:r:<request_id>
-- KEYS[2]        reservation expiries <p>:{<org>}:exp  (zset rid -> expiry ms)
-- KEYS[2 + i]    line i's window key (see common.lua)
-- ARGV[1] request_id  ARGV[2] cost_nanos  ARGV[3] tokens  ARGV[4] now_ms
-- ARGV[5] reservation expires at (Unix ms)  ARGV[6] record ttl ms
-- ARGV[7] the reservation record (see common.lua)
-- ARGV[3 + 5i .. 7 + 5i]  line i: limit_nanos, limit_tokens, limit_requests ('' = none),
--                flags (1 = enforce, 2 = suspend_on_exceed, summed), expire_at_ms ('' = none)
--
-- Returns {'dup'} when the request id already has a record (nothing changes);
-- {'deny', i, reason, spent, rsv, tok, rtok, req, thr} when line i refuses (nothing is
-- reserved; a suspend_on_exceed budget becomes suspended);
-- {'ok', shadow_over_csv, then spent + rsv for each line after reserving}: all admission
-- needs (what is left under each USD limit); every value read and returned costs.
--
-- The hold is added first and checked after (one BITFIELD per window reads the counters and
-- adds to them); a refusal takes it off again before the script returns, so nothing outside
-- ever sees it. Redis calls on the common path: SET NX (record + replay check),
-- ZRANGEBYSCORE, one BITFIELD per window, ZADD.
local rid, now = ARGV[1], ARGV[4]
-- The record is the replay check too: written first, only if absent.
if not redis.call('SET', KEYS[1], ARGV[7], 'NX', 'PX', ARGV[6]) then
  return { 'dup' }
end
-- Reservations release themselves: the expired ones are taken off their windows here, a
-- few per call, before anything is read. Their records stay for late settlements.
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 8)
if #gone > 0 then
  local record_prefix = string.sub(KEYS[1], 1, #KEYS[1] - #rid)
  for _, old in ipairs(gone) do
    local rec = redis.call('GET', record_prefix .. old)
    if rec and rec ~= 'settled' then
      release(rec)
    end
  end
  redis.call('ZREM', KEYS[2], unpack(gone))
end
local out = { 'ok', '' }
local shadow_over = nil
for i = 1, #KEYS - 2 do
  local w, a = KEYS[2 + i], 3 + 5 * i
  local ln, lt, lr, flags = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local enforce, susp = flags == '1' or flags == '3', flags == '2' or flags == '3'
  local suspended = susp and redis.call('EXISTS', side_key(w, 'susp')) == 1
  local c
  if lr == '' then
    c = redis.call('BITFIELD', w, 'OVERFLOW', 'SAT', 'GET', 'i64', '#0',
      'INCRBY', 'i64', '#1', ARGV[2], 'GET', 'i64', '#2', 'INCRBY', 'i64', '#3', ARGV[3],
      'INCRBY', 'i64', '#4', '1')
  else
    -- A request limit counts the requests leases hold too (#6), read only here.
    c = redis.call('BITFIELD', w, 'OVERFLOW', 'SAT', 'GET', 'i64', '#0',
      'INCRBY', 'i64', '#1', ARGV[2], 'GET', 'i64', '#2', 'INCRBY', 'i64', '#3', ARGV[3],
      'INCRBY', 'i64', '#4', '1', 'GET', 'i64', '#6')
  end
  local reason = nil
  if suspended then
    reason = 'suspended'
  elseif lr ~= '' and c[5] + c[6] > tonumber(lr) then
    reason = 'requests'
  elseif ln ~= '' and c[1] + c[2] > tonumber(ln) then
    reason = 'usd'
  elseif lt ~= '' and c[3] + c[4] > tonumber(lt) then
    reason = 'tokens'
  end
  if reason and enforce then
    -- Take this call's hold off every window it was added to so far.
    local nc, nt = neg(ARGV[2]), neg(ARGV[3])
    for j = 1, i do
      local u = redis.call('BITFIELD', KEYS[2 + j], 'OVERFLOW', 'SAT', 'GET', 'i64', '#0',
        'INCRBY', 'i64', '#1', nc, 'GET', 'i64', '#2', 'INCRBY', 'i64', '#3', nt,
        'INCRBY', 'i64', '#4', '-1')
      tidy(KEYS[2 + j], u[1], u[2], u[3], u[4], u[5])
    end
    redis.call('DEL', KEYS[1])
    if susp then
      redis.call('SET', side_key(w, 'susp'), '1')
    end
    local thr = redis.call('BITFIELD', w, 'GET', 'i64', '#5')[1]
    return { 'deny', i, reason, reply(c[1]), reply(c[2] - tonumber(ARGV[2])), reply(c[3]),
      reply(c[4] - tonumber(ARGV[3])), reply(c[5] - 1), thr }
  end
  if reason then
    shadow_over = shadow_over and (shadow_over .. ',' .. i) or tostring(i)
  end
  -- A new window (first request) gets its expiry once: window end + grace.
  if c[5] == 1 and ARGV[a + 4] ~= '' then
    redis.call('PEXPIREAT', w, ARGV[a + 4])
  end
  out[#out + 1] = reply(c[1] + c[2])
end
if shadow_over then
  out[2] = shadow_over
end
redis.call('ZADD', KEYS[2], ARGV[5], rid)
return out
