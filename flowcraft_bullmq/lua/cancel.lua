--[==[ cancel: move a running or awaiting run to cancelled (InMemoryCoordinationStore.cancel).

KEYS[1..12]  the run's fixed keys (keys.FIXED order, meta first)
ARGV[1]      state TTL in seconds (0 = keep)
ARGV[2]      join key prefix (keys.RunKeys.join_prefix)

Returns 1 if cancelled, 0 if the run had already finished. Error NORUN if it does not exist.
]==]

local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return redis.error_reply('NORUN run not found')
end
if FINISHED[status] or status == 'compensating' then
  return 0
end
finish('cancelled', now_s(), tonumber(ARGV[1]), ARGV[2])
return 1
