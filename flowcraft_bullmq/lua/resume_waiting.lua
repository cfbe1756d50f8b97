--[==[ resume_waiting: claim a waiting activation for a resume job
(InMemoryCoordinationStore.resume_waiting).

KEYS[1]  meta
KEYS[2]  waiting
KEYS[3]  acts (the claim is recorded there as field "<akey>~claim")
KEYS[4]  frontier: the claimed activation is owed again, until its resume job completes it
ARGV[1]  akey of the waiting activation (without "~wait")
ARGV[2]  the resume, [output, action] JSON: the claim's value, read by the resume job
ARGV[3]  its frontier entry (codec.pack_ready)

Returns 1 (inFlight + 1, status running, a new episode if it was awaiting) if the activation is waiting, not yet claimed, and
the run has not finished, else 0: a second resume of the same activation (a webhook delivered
twice) must not count in-flight work that will never complete. Error NORUN if the run does
not exist.
]==]

local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return redis.error_reply('NORUN run not found')
end
if FINISHED[status] or status == 'compensating' then
  return 0
end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  return 0
end
if redis.call('HSETNX', KEYS[3], ARGV[1] .. '~claim', ARGV[2]) == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'inFlight', 1)
if status == 'awaiting' then -- a new episode (subflow notifications, subflows.py)
  redis.call('HINCRBY', KEYS[1], 'episode', 1)
end
if status ~= 'paused' then -- a paused run stays paused: the resume job runs on unpause
  redis.call('HSET', KEYS[1], 'status', 'running')
end
redis.call('HSET', KEYS[1], 'progressAt', now_s())
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
return 1
