-- docs.lua: versioned write or delete of one JSON document (budget, price, switch).
--
-- Why a script: compare-the-version-then-write must be atomic for If-Match to mean anything
-- when two admins (or two replicas) write the same budget at once.
--
-- KEYS[1] the collection hash  <p>:docs:<collection>   (field = id, value = "<version>:<json>")
-- ARGV[1] id   ARGV[2] 'put' | 'del'   ARGV[3] expect: 'absent' | 'exists' | a version number
-- ARGV[4] the JSON (put only)
-- Returns {'ok', new_version} | {'exists'} | {'missing'} | {'mismatch', current_version}
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local version = 0
if cur then
  version = tonumber(string.match(cur, '^(%d+):'))
end
local expect = ARGV[3]
if expect == 'absent' then
  if cur then return { 'exists' } end
else
  if not cur then return { 'missing' } end
  if expect ~= 'exists' and tonumber(expect) ~= version then
    return { 'mismatch', version }
  end
end
if ARGV[2] == 'del' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return { 'ok', version }
end
redis.call('HSET', KEYS[1], ARGV[1], (version + 1) .. ':' .. ARGV[4])
return { 'ok', version + 1 }
