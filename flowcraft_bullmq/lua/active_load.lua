--[==[ active_load: BullMQ's moveToActive, then our load of the job it fetched (composed.py).
Not a script on its own: composed.py puts the installed BullMQ's moveToActive-11.lua in front
of it as MOVE_TO_ACTIVE and load.lua as LOAD, each a local function of (KEYS, ARGV).

KEYS[1..11], ARGV[1..3]  BullMQ's moveToActive's, as its worker passes them
ARGV[4]  our key prefix (RedisCoordinationStore.prefix): a run's keys are "<prefix>:{<runId>}:..."
ARGV[5]  the preload cache (hash): "<blueprintId>\n<pin>\n<nodeId>" -> the context keys a job of
         that node loads, JSON (a list, or null for the whole context), as workers published
         them (RedisCoordinationStore.load)

Returns moveToActive's reply unchanged when it fetched no flowcraft job, or when the cache does
not know the job's node; else that reply followed by [load.lua's reply, run id, akey, the keys
JSON the load used]. Read only, past moveToActive.
]==]

local reply = MOVE_TO_ACTIVE(KEYS, ARGV)
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
local base = ARGV[4] .. ':{' .. data.runId .. '}:'
local run = redis.call('HMGET', base .. 'meta', 'blueprintId', 'blueprintVersion')
if not run[1] or not run[2] then
  return reply
end
local keys = redis.call('HGET', ARGV[5], run[1] .. '\n' .. run[2] .. '\n' .. data.nodeId)
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
