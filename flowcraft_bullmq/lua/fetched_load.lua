--[==[ fetched_load: our load of a job BullMQ just moved to active (composed.py). Not a script:
composed.py puts it after load.lua (as the local function LOAD) in the scripts that fetch a job:
`moveToActive+load` (lua/active_load.lua) and `complete+add+finish`, whose finish may fetch the
slot's next job (BullMQ's moveToFinished with fetch next). LOAD takes the run's meta fields
read here from the local META (one read of the hash, not two).

load_fetched(reply, prefix, cache_key)
  reply      BullMQ's fetch reply {job fields, job id, limitUntil, delayUntil}
  prefix     our key prefix (RedisCoordinationStore.prefix): a run's keys are
             "<prefix>:{<runId>}:..."
  cache_key  the preload cache (hash): "<blueprintId>\n<pin>\n<nodeId>" -> the context keys a
             job of that node loads, JSON (a list, or null for the whole context), as workers
             published them (RedisCoordinationStore.load)

Returns the reply unchanged when it holds no flowcraft job, or when the cache does not know the
job's node; else the reply followed by [load.lua's reply, run id, akey, the keys JSON the load
used]. Read only.
]==]

local function load_fetched(reply, prefix, cache_key)
  local fields = reply[1]
  if type(fields) ~= 'table' then
    return reply
  end
  local text
  for i = 1, #fields, 2 do
    if fields[i] == 'data' then
      text = fields[i + 1]
      break
    end
  end
  local ok, data = pcall(cjson.decode, text or '')
  if not ok or type(data) ~= 'table' or type(data.runId) ~= 'string'
      or type(data.nodeId) ~= 'string' or type(data.iteration) ~= 'table'
      or not string.match(data.runId, '^[A-Za-z0-9_.~-]+$') then
    return reply
  end
  for _, i in ipairs(data.iteration) do
    if type(i) ~= 'number' or i < 0 or i >= 1e9 or math.floor(i) ~= i then
      return reply
    end
  end
  local base = prefix .. ':{' .. data.runId .. '}:'
  -- load.lua's fields, in its order (it returns them): 2 and 3 are the blueprint and its pin.
  local run = redis.call('HMGET', base .. 'meta', 'status', 'blueprintId', 'blueprintVersion',
    'episode', 'parent', 'queue', 'priority', 'routed')
  if not run[2] or not run[3] then
    return reply
  end
  local keys = redis.call('HGET', cache_key, run[2] .. '\n' .. run[3] .. '\n' .. data.nodeId)
  if not keys then
    return reply
  end
  local akey = data.nodeId .. '@' .. table.concat(data.iteration, '.')
  local argv = {akey, '1'}
  local wanted = cjson.decode(keys)
  if type(wanted) == 'table' then
    argv[2] = '0'
    for _, key in ipairs(wanted) do
      argv[#argv + 1] = key
    end
  end
  META = run
  local loaded = LOAD({base .. 'meta', base .. 'ctx', base .. 'acts', base .. 'fired',
    base .. 'waiting', base .. 'join:' .. akey}, argv)
  if loaded.err then
    return reply
  end
  reply[#reply + 1] = loaded
  reply[#reply + 1] = data.runId
  reply[#reply + 1] = akey
  reply[#reply + 1] = keys
  return reply
end
