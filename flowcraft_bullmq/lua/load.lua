--[==[ load: what a worker needs before running one activation (InMemoryCoordinationStore.load).
Read only.

KEYS[1]  meta
KEYS[2]  ctx
KEYS[3]  acts
KEYS[4]  fired
KEYS[5]  waiting
KEYS[6]  the join key of ARGV[1]
ARGV[1]  akey
ARGV[2]  "1" = the whole context, "0" = only the keys ARGV[3..]
ARGV[3..] context keys

Returns {status, blueprintId, blueprintVersion (the pin), recorded Applied JSON | nil,
         fired pred | nil, waiting 0 | 1, {pred, [status, value] JSON, ...}, {key, JSON value, ...},
         sleep record [wakeAt ms, input] JSON | nil, resume claim [output, action] JSON | nil,
         batch input [item] or [results] JSON | nil (complete.lua's batches),
         child record JSON | nil (a parked subflow), episode, parent link JSON | nil,
         the run's default queue | nil, its priority | nil, routed 1 | nil (docs/scheduling.md)}.
Error NORUN if the run does not exist.
]==]

-- In the scripts that load a job they fetched (composed.py), lua/fetched_load.lua has read
-- these fields already (for the pin) and passes them as META: composed.py turns this line into
-- "local meta = META or redis.call(...".
local meta = redis.call('HMGET', KEYS[1], 'status', 'blueprintId', 'blueprintVersion',
  'episode', 'parent', 'queue', 'priority', 'routed')
if not meta[1] then
  return redis.error_reply('NORUN run not found')
end
local akey = ARGV[1]
local values
if ARGV[2] == '1' then
  values = redis.call('HGETALL', KEYS[2])
else
  values = {}
  if #ARGV >= 3 then
    local found = redis.call('HMGET', KEYS[2], unpack(ARGV, 3))
    for i = 3, #ARGV do
      local value = found[i - 2]
      if value then
        values[#values + 1] = ARGV[i]
        values[#values + 1] = value
      end
    end
  end
end
-- The activation's records in acts, one read: applied, sleep, claim, batch input, child.
local acts = redis.call('HMGET', KEYS[3], akey, akey .. '~wake', akey .. '~claim',
  akey .. '~in', akey .. '~sub')
return {
  meta[1], meta[2], meta[3],
  acts[1],
  redis.call('HGET', KEYS[4], akey),
  redis.call('HEXISTS', KEYS[5], akey),
  redis.call('HGETALL', KEYS[6]),
  values,
  acts[2], acts[3], acts[4], acts[5],
  meta[4] or '0', meta[5],
  meta[6], meta[7], meta[8],
}
