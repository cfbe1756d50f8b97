--[==[ create_run: write a new run's meta and context (InMemoryCoordinationStore.create_run).

KEYS[1..12]  the run's fixed keys (keys.FIXED order, meta first)
ARGV[1]      blueprint id
ARGV[2]      version pin (meta field blueprintVersion)
ARGV[3]      number of entry activations (the initial inFlight)
ARGV[4]      state TTL in seconds, for a run with no entries (0 = keep)
ARGV[5]      join key prefix (keys.RunKeys.join_prefix)
ARGV[6]      a subflow child's parent link, [run id, node id, iteration] JSON (meta
             parent), or "" for none
ARGV[7]      number N of loop counters the entries open (an entry may be a loop header)
ARGV[8..7+N] those counters (fields of the live hash, KEYS[8])
then         number M of scheduling fields, then M meta field/value pairs (queue, priority,
             routed, wakeAt: docs/scheduling.md)
then         the frontier of the entry activations, ARGV[3] pairs: akey, frontier JSON
             (["r", followup], keys.py), ...; then the context: key, JSON value, ...

Returns 1. Error EXISTS if the run exists. A run with no entries is completed at once.
Leftovers of an expired run with the same id (its keys expire one by one) are deleted first.
]==]

local meta = KEYS[1]
if redis.call('EXISTS', meta) == 1 then
  return redis.error_reply('EXISTS run already exists')
end
each_run_key(ARGV[5], function(key) redis.call('DEL', key) end)

local now = now_s()
local entries = tonumber(ARGV[3])
redis.call('HSET', meta, 'blueprintId', ARGV[1], 'blueprintVersion', ARGV[2], 'status', 'running',
  'createdAt', now, 'progressAt', now, 'inFlight', entries)
if ARGV[6] ~= '' then
  redis.call('HSET', meta, 'parent', ARGV[6])
end
local ncounters = tonumber(ARGV[7])
for i = 8, 7 + ncounters do
  redis.call('HINCRBY', KEYS[8], ARGV[i], 1)
end
local nmeta = tonumber(ARGV[8 + ncounters])
for i = 9 + ncounters, 8 + ncounters + 2 * nmeta, 2 do
  redis.call('HSET', meta, ARGV[i], ARGV[i + 1])
end
local first_entry = 9 + ncounters + 2 * nmeta
local first_value = first_entry + 2 * entries
for i = first_entry, first_value - 1, 2 do
  redis.call('HSET', KEYS[12], ARGV[i], ARGV[i + 1])
end
for i = first_value, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
if entries == 0 then
  finish('completed', now, tonumber(ARGV[4]), ARGV[5])
end
return 1
