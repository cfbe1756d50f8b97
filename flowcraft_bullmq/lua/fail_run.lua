--[==[ fail_run: fail a run with a run-level error (InMemoryCoordinationStore.fail_run).

KEYS[1..12]  the run's fixed keys (keys.FIXED order, meta first)
ARGV[1]      the error record, JSON
ARGV[2]      state TTL in seconds (0 = keep)
ARGV[3]      join key prefix (keys.RunKeys.join_prefix)

Returns 1 if failed now, 0 if the run had already finished (nothing recorded).
Error NORUN if the run does not exist.
]==]

local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return redis.error_reply('NORUN run not found')
end
if FINISHED[status] or status == 'compensating' then
  return 0
end
redis.call('RPUSH', KEYS[3], ARGV[1])
finish('failed', now_s(), tonumber(ARGV[2]), ARGV[3])
return 1
