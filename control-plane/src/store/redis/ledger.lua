-- ledger.lua: the ledger's part of a settle batch (prepended to settle.lua, after common.lua).
-- It runs inside settle.lua's one script call, so the batch's records are written in the
-- same atomic step as their charges, and only for the settlements applied (never a replay).
-- Rollup rows are not written here: the rollup pass (rollup.lua, store/redis/rollup.rs)
-- reads the stream after its cursor and adds a whole run of records to their rows at once,
-- moving the cursor in the same step, so each record is counted exactly once. Trimming the
-- stream is the rollup pass's too (it never drops a record it has not counted).
-- Layout: docs/redis-keys.md.
--
-- One stream entry per batch, not per settlement: an XADD costs about a quarter of a whole
-- settlement's Redis time, and each argument passed costs too. The batch's records come as
-- ONE argument, already encoded by Rust (a JSON array, one element per settlement of the
-- batch, null where a settlement has no record); Lua never looks inside it. The entry says
-- which settlements were replays (field x: their positions, comma-separated), and readers
-- skip those records.
--
-- KEYS[2]  the org's record stream <p>:{tag}:lrec (declared even when the ledger is off)
-- ARGV[3]  the batch's records ('' = none: nothing is written)
-- ARGV[4]  the entry id "<now_ms>-*"

-- Writes the batch's entry: `applied` settlements were applied, `dups` holds the positions
-- (0-based) of the replays.
local function ledger_write(applied, dups)
  if ARGV[3] == '' or applied == 0 then
    return
  end
  local fields = { 'b', ARGV[3] }
  if #dups > 0 then
    fields[3] = 'x'
    fields[4] = table.concat(dups, ',')
  end
  -- The entry id is the control plane's clock, so records are paged by the time it wrote
  -- them; a replica whose clock is behind the stream's last entry gets Redis's own id,
  -- which is always past the last one.
  local added = redis.pcall('XADD', KEYS[2], ARGV[4], unpack(fields))
  if type(added) == 'table' and added.err then
    redis.call('XADD', KEYS[2], '*', unpack(fields))
  end
end
