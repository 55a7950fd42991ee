-- reserve.lua: check and reserve one call's estimate on every budget window that matches it.
--
-- Why one script: the check ("would this pass the limit?") and the reservation must happen
-- with nothing in between, across ALL matching budgets, or two concurrent calls could both
-- take the last dollar, or a call could reserve on one budget and then be refused by another.
--
-- KEYS[1]                         reservation record   <p>:{<org>}:r:<request_id>
-- KEYS[2 + 4(i-1) .. 5 + 4(i-1)]  line i's 4 keys (see common.lua)
-- ARGV[1] request_id   ARGV[2] cost_nanos   ARGV[3] tokens   ARGV[4] now_ms
-- ARGV[5] reservation expires at (Unix ms)  ARGV[6] record ttl ms  ARGV[7] n lines
-- ARGV[8 + 9(i-1) ..]             line i's 9 values (see common.lua)
--
-- Returns {'dup'} when the request id already has a record (nothing changes);
-- {'deny', i, reason, spent, rsv, tok, rtok, req, thr} when line i refuses (nothing changes,
-- except that a suspend_on_exceed budget becomes suspended);
-- {'ok', shadow_over_csv, then spent, rsv, tok, rtok, req, thr for each line after reserving}.
local rid, cost, tokens, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local rexp, record_ttl, n = ARGV[5], ARGV[6], tonumber(ARGV[7])
if redis.call('EXISTS', KEYS[1]) == 1 then
  return { 'dup' }
end
local lines = read_lines(n, 2, 8)
local shadow_over = {}
for i, line in ipairs(lines) do
  -- Reservations release themselves: drop the expired ones (bounded work per call).
  local gone = redis.call('ZRANGEBYSCORE', line.z, '-inf', now, 'LIMIT', 0, 64)
  if #gone > 0 then
    local c, t = 0, 0
    for _, m in ipairs(gone) do
      local mc, mt = string.match(m, '|(%-?%d+)|(%-?%d+)$')
      c, t = c + num(mc), t + num(mt)
    end
    redis.call('ZREM', line.z, unpack(gone))
    redis.call('HINCRBY', line.w, 'rsv', -c)
    redis.call('HINCRBY', line.w, 'rtok', -t)
  end
  local c = counters(line.w)
  local reason = nil
  if redis.call('EXISTS', line.s) == 1 then
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
        redis.call('SET', line.s, '1')
      end
      return { 'deny', i, reason, c[1], c[2], c[3], c[4], c[5], c[6] }
    end
    shadow_over[#shadow_over + 1] = tostring(i)
  end
end
local member = rid .. '|' .. ARGV[2] .. '|' .. ARGV[3]
local out = { 'ok', table.concat(shadow_over, ',') }
local stored = {}
for i, line in ipairs(lines) do
  local spent = num(redis.call('HGET', line.w, 'spent'))
  local rsv = redis.call('HINCRBY', line.w, 'rsv', cost)
  local rtok = redis.call('HINCRBY', line.w, 'rtok', tokens)
  local req = redis.call('HINCRBY', line.w, 'req', 1)
  local v = redis.call('HMGET', line.w, 'tok', 'thr')
  redis.call('ZADD', line.z, rexp, member)
  expire(line)
  for _, x in ipairs({ spent, rsv, num(v[1]), rtok, req, num(v[2]) }) do
    out[#out + 1] = x
  end
  stored[i] = line
end
-- The record lets settle find these windows again, even after the window rolls over.
redis.call('SET', KEYS[1], cjson.encode({ m = member, c = ARGV[2], t = ARGV[3], l = stored }),
  'PX', record_ttl)
return out
