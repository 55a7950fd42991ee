-- rollup.lua: adds a run of ledger records to their rollup rows and moves the rollup
-- cursor past them, in one step (store/redis/rollup.rs builds the call).
--
-- Exactly once: the caller read the cursor, the records after it and the rows' current
-- values, and computed the rows' new values in Rust (exact i64, saturating). This script
-- writes them only if the cursor is still where the caller read it: every row write goes
-- through this script and moves the cursor, so an unchanged cursor means unchanged rows.
-- Two passes racing (two control planes) cannot both apply: the second sees 'moved' and
-- starts again from the new cursor.
--
-- KEYS[1] the cursor <p>:{tag}:lcur, KEYS[2] the record stream <p>:{tag}:lrec, then one
--   key per bucket: <p>:{tag}:lh:<hour> / <p>:{tag}:ld:<day> (hash: row field -> value).
-- ARGV[1] the cursor read ('' = none yet), ARGV[2] the new cursor (the last record
--   counted), ARGV[3] trim: '1' when the pass read the stream to its end, ARGV[4] the
--   stream's MAXLEN, ARGV[5] MINID to trim to ('' = none), then per bucket: its expiry
--   (Unix ms), n, then n pairs (row field, new value: twelve big-endian i64 as bytes).
--
-- Trimming: only records already counted may go. MAXLEN ~ keeps the newest ARGV[4]; it is
-- applied only when fewer than that many records follow the new cursor (a short XRANGE
-- says so), and MINID is never past the new cursor's time (Rust clamps it).
-- Returns 'moved' or 'ok'.
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then
  return 'moved'
end
local a, k = 6, 3
while a <= #ARGV do
  local exp, n = ARGV[a], tonumber(ARGV[a + 1])
  redis.call('HSET', KEYS[k], unpack(ARGV, a + 2, a + 1 + 2 * n))
  redis.call('PEXPIREAT', KEYS[k], exp)
  a, k = a + 2 + 2 * n, k + 1
end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] == '1' then
  local max = tonumber(ARGV[4])
  local probe = math.min(max, 1000)
  local after = redis.call('XRANGE', KEYS[2], '(' .. ARGV[2], '+', 'COUNT', probe)
  if #after < probe then
    redis.call('XTRIM', KEYS[2], 'MAXLEN', '~', ARGV[4])
  end
  if ARGV[5] ~= '' then
    redis.call('XTRIM', KEYS[2], 'MINID', '~', ARGV[5])
  end
end
return 'ok'
