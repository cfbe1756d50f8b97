--[==[ run_control: compensation progress and pause/unpause of one run
(InMemoryCoordinationStore's record_compensation, end_compensation, pause, unpause).

KEYS[1..12]  the run's fixed keys (keys.FIXED order, meta first)
ARGV[1]      the operation: "record", "end", "pause" or "unpause"
ARGV[2]      state TTL in seconds (0 = keep), for "end"
ARGV[3]      join key prefix (keys.RunKeys.join_prefix), for "end"
"record":    ARGV[4] the completion number n (acts "~comp:<n>"), ARGV[5] the done mark
             [node id, error record or null] JSON (acts "~comp:<n>:done"), then the
             compensation's context writes: key, JSON value or "" to delete, ...

Returns 1 if it changed the run, else 0:
  record   only while compensating, once per n: the mark and the writes together, so a
           compensation is never recorded without its writes, nor applied twice
  end      compensating -> failed (the final status: TTLs as any final script)
  pause    running or awaiting -> paused
  unpause  paused -> running, or awaiting when nothing is in flight and a node waits
Error NORUN if the run does not exist.
]==]

local meta, ctx, acts = KEYS[1], KEYS[2], KEYS[4]
local status = redis.call('HGET', meta, 'status')
if not status then
  return redis.error_reply('NORUN run not found')
end
local op = ARGV[1]
if op == 'record' then
  if status ~= 'compensating' then
    return 0
  end
  if redis.call('HSETNX', acts, '~comp:' .. ARGV[4] .. ':done', ARGV[5]) == 0 then
    return 0
  end
  for i = 6, #ARGV, 2 do
    if ARGV[i + 1] == '' then
      redis.call('HDEL', ctx, ARGV[i])
    else
      redis.call('HSET', ctx, ARGV[i], ARGV[i + 1])
    end
  end
  redis.call('HSET', meta, 'progressAt', now_s())
  return 1
elseif op == 'end' then
  if status ~= 'compensating' then
    return 0
  end
  finish('failed', now_s(), tonumber(ARGV[2]), ARGV[3])
  return 1
elseif op == 'pause' then
  if status ~= 'running' and status ~= 'awaiting' then
    return 0
  end
  redis.call('HSET', meta, 'status', 'paused')
  return 1
elseif op == 'unpause' then
  if status ~= 'paused' then
    return 0
  end
  local idle = tonumber(redis.call('HGET', meta, 'inFlight') or '0') == 0
  local resumed = (idle and redis.call('HLEN', KEYS[11]) > 0) and 'awaiting' or 'running'
  redis.call('HSET', meta, 'status', resumed, 'progressAt', now_s())
  return 1
end
return redis.error_reply('ERR unknown run_control operation ' .. tostring(op))
