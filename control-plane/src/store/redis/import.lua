-- import.lua: imported spend rows (Store::import_spend, store/redis/import.rs) into an org's
-- record stream, each row once. The rollup pass (rollup.rs) adds them to their rollup rows
-- as it adds records: it is the only writer of rows, and its cursor makes every addition
-- exactly once (a row written straight into a bucket hash here could be overwritten by a
-- pass that read the bucket before). The entry holds no record: record readers skip it.
--
-- KEYS[1] the org's record stream <p>:{tag}:lrec, then one import marker per row,
--   <p>:{tag}:r:import:<row id> (all under the org's hash tag: one slot).
-- ARGV[1] the rows: a JSON array, one element per marker, in order (Lua never looks inside)
-- ARGV[2] the entry id "<now_ms>-*"
-- ARGV[3] how long a marker blocks the same row again, ms
-- Returns the positions (0-based) of the rows imported before (they add nothing; the entry
-- lists them in field x, as a settle batch lists its replays).
local dups = {}
for i = 2, #KEYS do
  if not redis.call('SET', KEYS[i], 'i', 'NX', 'PX', ARGV[3]) then
    dups[#dups + 1] = i - 2
  end
end
if #dups < #KEYS - 1 then
  local fields = { 'h', ARGV[1] }
  if #dups > 0 then
    fields[3] = 'x'
    fields[4] = table.concat(dups, ',')
  end
  -- As ledger.lua: the control plane's clock, or Redis's own id when a replica's clock is
  -- behind the stream's last entry.
  local added = redis.pcall('XADD', KEYS[1], ARGV[2], unpack(fields))
  if type(added) == 'table' and added.err then
    redis.call('XADD', KEYS[1], '*', unpack(fields))
  end
end
return dups
