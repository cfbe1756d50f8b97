--[==[ lib.lua: helpers that scripts.py puts in front of the scripts that write run state
(scripts.WITH_LIB). Not a script on its own.

KEYS[1..12]  only for `each_run_key` and `finish`, which the scripts that can end a run call:
             the run's fixed keys in keys.FIXED order: 1 meta, 2 ctx, 3 errors, 4 acts,
             5 joins, 6 decided, 7 fired, 8 live, 9 back, 10 exits, 11 waiting, 12 frontier
ARGV         none read here; `finish` takes the TTL and the join key prefix as arguments.
]==]

local FINISHED = {completed = true, failed = true, cancelled = true, stalled = true}

-- The number of fixed keys (len(keys.FIXED)); a script's other keys come after them.
local FIXED_KEYS = 12

-- Seconds since the epoch on the Redis clock ("1712345678.123456"): one clock for all workers.
local function now_s()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end

-- Every key of the run: the fixed keys, then one join key per member of KEYS[5]. The join key
-- names are the only ones a script builds: `join_prefix .. target` (keys.RunKeys.join).
local function each_run_key(join_prefix, fn)
  for _, target in ipairs(redis.call('SMEMBERS', KEYS[5])) do
    fn(join_prefix .. target)
  end
  for i = 1, FIXED_KEYS do
    fn(KEYS[i])
  end
end

-- Set a final status and give every key of the run a TTL of `ttl` seconds (0 keeps them).
-- Call it after the script's last write, so keys it created get the TTL too.
local function finish(status, now, ttl, join_prefix)
  redis.call('HSET', KEYS[1], 'status', status, 'finishedAt', now)
  -- Buffered resumes (P:{R}:resume, keys.RunKeys.resume) are dropped when the run ends.
  redis.call('DEL', string.sub(join_prefix, 1, -6) .. 'resume')
  if ttl > 0 then
    each_run_key(join_prefix, function(key) redis.call('EXPIRE', key, ttl) end)
  end
end

