--[==[ buffer_resume: buffer a resume that matches no waiting activation (SPEC 9.7;
InMemoryCoordinationStore.buffer_resume).

KEYS[1]  meta
KEYS[2]  waiting
KEYS[3]  acts (claims are fields "<akey>~claim")
KEYS[4]  the run's buffered resumes (keys.RunKeys.resume), a list, oldest first
ARGV[1]  the node id the resume names, or "" for none
ARGV[2]  the list entry: "<node id JSON or null>\n<[output, action] JSON>"

Returns "finished" if the run has ended (nothing is buffered), "retry" if an unclaimed waiting
activation it matches exists (the caller claims that one instead), else "buffered" (appended).
Error NORUN if the run does not exist. complete.lua takes entries when a wait starts; the list
is deleted when the run ends (lib.lua `finish`).
]==]

local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return redis.error_reply('NORUN run not found')
end
if FINISHED[status] or status == 'compensating' then
  return 'finished'
end
local node = ARGV[1]
for _, key in ipairs(redis.call('HKEYS', KEYS[2])) do
  -- An akey is "<node id>@<iteration>", the iteration digits and dots.
  local matches = node == ''
    or (string.sub(key, 1, #node + 1) == node .. '@'
      and string.find(string.sub(key, #node + 2), '^[%d.]*$') ~= nil)
  if matches and redis.call('HEXISTS', KEYS[3], key .. '~claim') == 0 then
    return 'retry'
  end
end
redis.call('RPUSH', KEYS[4], ARGV[2])
return 'buffered'
