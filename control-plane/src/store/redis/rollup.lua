-- rollup.lua: adds a run of ledger records to their rollup rows and moves the rollup
-- cursor past them, in one step (store/redis/rollup.rs builds the call).
--
-- Exactly once: the caller read the cursor, the entries after it and the rows' current
-- values, and computed the rows' new values in Rust (exact i64, saturating). This script
-- writes them only if the cursor is still where the caller read it: every row write goes
-- through this script and moves the cursor, so an unchanged cursor means unchanged rows.
-- Two passes racing (two control planes) cannot both apply: the second sees 'moved' and
-- starts again from the new cursor.
--
-- KEYS[1] the cursor <p>:{tag}:lcur, KEYS[2] the record stream <p>:{tag}:lrec, KEYS[3] the
--   count marks <p>:{tag}:lmark, then one key per bucket: <p>:{tag}:rh:<hour> /
--   <p>:{tag}:rd:<day> (hash: row field -> value).
-- ARGV[1] the cursor read ('' = none yet), ARGV[2] the new cursor ("<last entry counted>
--   <records counted since the stream began>"), ARGV[3] the count floor: records counted
--   minus the stream's records_max (every mark at or below it may go), ARGV[4] MINID for the
--   age limit ('' = none), ARGV[5] m, then m new marks, then per bucket: its expiry (Unix
--   ms), n, then n pairs (row field, new value: eleven big-endian i64 as bytes).
--
-- Trimming by count: an entry holds a settle batch (1 to 64 records), so MAXLEN (entries)
-- cannot keep a number of records. The pass appends a mark "<count> <id>" every
-- records_max / 64 records (count: records counted through that entry; id: the one right
-- after it); a mark at or below the floor means every entry before its id is counted and
-- at least records_max newer records remain. The newest such mark's id is the MINID.
-- Only counted records ever go: marks are at or before the new cursor, and Rust clamps the
-- age MINID to the new cursor's time. Both trims are exact (not `~`): a node holds 100
-- entries, up to 6 400 records.
-- Returns 'moved' or 'ok'.
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then
  return 'moved'
end
local m = tonumber(ARGV[5])
local a, k = 6 + m, 4
while a <= #ARGV do
  local exp, n = ARGV[a], tonumber(ARGV[a + 1])
  redis.call('HSET', KEYS[k], unpack(ARGV, a + 2, a + 1 + 2 * n))
  redis.call('PEXPIREAT', KEYS[k], exp)
  a, k = a + 2 + 2 * n, k + 1
end
redis.call('SET', KEYS[1], ARGV[2])
if m > 0 then
  redis.call('RPUSH', KEYS[3], unpack(ARGV, 6, 5 + m))
end
local floor = tonumber(ARGV[3])
local cut = nil
while true do
  local mark = redis.call('LINDEX', KEYS[3], 0)
  if not mark then
    break
  end
  local count, id = string.match(mark, '^(%d+) (%S+)$')
  if count and tonumber(count) > floor then
    break
  end
  -- (A mark this script cannot read is dropped.)
  cut = id or cut
  redis.call('LPOP', KEYS[3])
end
if cut then
  redis.call('XTRIM', KEYS[2], 'MINID', cut)
end
if ARGV[4] ~= '' then
  redis.call('XTRIM', KEYS[2], 'MINID', ARGV[4])
end
return 'ok'
