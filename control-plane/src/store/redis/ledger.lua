-- ledger.lua: the ledger's part of a settlement (prepended to settle.lua, after common.lua).
-- It runs inside settle.lua's one script call, so a settlement's record is written in the
-- same atomic step as its charge, and only when the charge is applied (never for a replay).
-- Rollup rows are not written here: the rollup pass (rollup.lua, store/redis/rollup.rs)
-- reads the stream after its cursor and adds a whole run of records to their rows at once,
-- moving the cursor in the same step, so each record is counted exactly once. Trimming the
-- stream is the rollup pass's too (it never drops a record it has not counted).
-- Layout: docs/redis-keys.md.
--
-- KEYS, per settlement with a record (from k): the org's record stream <p>:{tag}:lrec.
-- ARGV (from a): '1' then the record (compact JSON, written by Rust) and the entry id
--   "<now_ms>-*"; or '0' (no record: nothing else follows).

-- How many KEYS and ARGV one settlement's ledger part takes (what a replay skips).
local function ledger_size(a)
  if ARGV[a] == '0' then
    return 0, 1
  end
  return 1, 3
end

-- Writes one settlement's record (KEYS from k, ARGV from a).
local function ledger_write(k, a)
  if ARGV[a] == '0' then
    return
  end
  -- The entry id is the control plane's clock, so records are paged by the time it wrote
  -- them; a replica whose clock is behind the stream's last entry gets Redis's own id,
  -- which is always past the last one.
  local added = redis.pcall('XADD', KEYS[k], ARGV[a + 2], 'r', ARGV[a + 1])
  if type(added) == 'table' and added.err then
    redis.call('XADD', KEYS[k], '*', 'r', ARGV[a + 1])
  end
end
