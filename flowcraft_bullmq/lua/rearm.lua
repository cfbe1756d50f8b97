--[==[ rearm: a subflow activation that waits on its child is in flight again
(InMemoryCoordinationStore.rearm).

KEYS[1]  meta
KEYS[2]  waiting
KEYS[3]  acts (field "<akey>~ep": the child episode of the activation's latest wait)
KEYS[4]  frontier: the activation is owed its completion again
ARGV[1]  akey of the waiting subflow activation
ARGV[2]  the child's episode now (it runs again since this episode began)
ARGV[3]  its frontier entry (codec.pack_ready)

Returns 1 (waiting mark removed, inFlight + 1, status running, a new episode if the run was
awaiting) if the activation waits since an earlier child episode and the run has not
finished, else 0. Error NORUN if the run does not exist.
]==]

local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return redis.error_reply('NORUN run not found')
end
if FINISHED[status] or status == 'compensating' or redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  return 0
end
local since = tonumber(redis.call('HGET', KEYS[3], ARGV[1] .. '~ep'))
if since == nil or since >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'inFlight', 1)
if status == 'awaiting' then
  redis.call('HINCRBY', KEYS[1], 'episode', 1)
end
if status ~= 'paused' then -- a paused run stays paused (run_control.lua)
  redis.call('HSET', KEYS[1], 'status', 'running')
end
redis.call('HSET', KEYS[1], 'progressAt', now_s())
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
return 1
