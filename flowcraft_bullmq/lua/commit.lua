--[==[ commit: apply context writes in order, as one unit (InMemoryCoordinationStore.commit).

KEYS[1]  meta
KEYS[2]  ctx
ARGV     key, JSON value, key, JSON value, ... ; an empty value deletes the key

Returns 1. Error NORUN if the run does not exist. On a finished run (whose keys have a TTL) the
context hash keeps the run's TTL, even if it was empty and is created here.
]==]

if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('NORUN run not found')
end
local ctx = KEYS[2]
for i = 1, #ARGV, 2 do
  local value = ARGV[i + 1]
  if value == '' then
    redis.call('HDEL', ctx, ARGV[i])
  else
    redis.call('HSET', ctx, ARGV[i], value)
  end
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('PEXPIRE', ctx, ttl)
end
return 1
