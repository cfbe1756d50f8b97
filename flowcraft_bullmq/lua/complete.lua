--[==[ complete: apply one activation's Transition, atomically and at most once per akey.
Step for step what flowcraft_core.distributed.memory.InMemoryCoordinationStore.complete does.

KEYS[1..12]  the run's fixed keys (keys.FIXED order): 1 meta, 2 ctx, 3 errors, 4 acts,
             5 joins, 6 decided, 7 fired, 8 live, 9 back, 10 exits, 11 waiting, 12 frontier
KEYS[13..]   the join key of each resolution (header "r"), in order, then of each next
             iteration (header "n")
ARGV[1]      the transition header (codec.pack_transition), JSON; user data is never inside,
             it is referenced by ARGV index:
               a  akey                  b  the activation's akey (protocol.waiting_base)
               o  [[ctx key, value index, or 0 to delete], ...]
               k  [output key, ...]     v  index of the output (when k is not empty)
               e  index of the error record (absent: no error)
               w  index of the waiting details (absent: the waiting mark is cleared)
               r  [[target, pred, status, entry index, expected, join any, [dead preds],
                    [counters to open], followup JSON, gate], ...]; gate (a gather only):
                  its scatter's akey, whose batch must end before it is ready
               n  [[back key, target, pred, entry index, [counters to open],
                    followup JSON], ...]
               x  [[loop instance, exit edge index], ...]
               c  [[counter, loop instance, Close JSON, [header id, prefix] JSON], ...]
               q  a waiting transition: the node id as JSON; it takes a buffered resume
                  (the resume list is then the last key, KEYS[#KEYS]) instead of waiting
               z  a sleeping transition: [akey, wakeAt in epoch seconds (text), index of
                  the sleep record [wakeAt ms, input]] (acts "<akey>~wake", meta wakeAt)
               B  a scatter opens its batch: {k scatter akey, s scatter id, t iteration text,
                  j iteration JSON, n item count, c chunk size (0 = no cap), g gather akey,
                  v index of item 0's [item] JSON (the others follow)}
               I  an item ended: {k scatter akey, i index, o index of its slot (absent with
                  an error, which fails the batch and is counted only if it is the first),
                  f true if it failed (collected or not: acts "<item akey>~fail")}
               y  a parked subflow: [akey, index of the child record] (acts "<akey>~sub")
               p  a subflow transition driven by its child, at this child episode: a wait
                  is ignored once the activation completed or waits at this episode or a
                  later one (acts "<akey>~ep"), and replaces an older wait; a completion of
                  a waiting activation makes the run running again (a new episode)
               m  a completion to compensate: index of [node id, iteration, output]
                  (acts "~comp:<n>", n = meta compN + 1)
ARGV[2]      state TTL in seconds (0 = keep the keys of a finished run)
ARGV[3]      join key prefix (keys.RunKeys.join_prefix)
ARGV[4..]    JSON texts referenced by index: context values, the output, join entries
             ([status, value]), the error record, the waiting details

Composed with BullMQ's addStandardJob (composed.py, the script `complete+add`): after those keys
and arguments come the add's, 9 keys (the queue's, composed.ADD_KEYS) and 8 arguments (its job
key prefix, its name, the job name, the packed job options before and after the job id, the
timestamp in ms, our key prefix and the preload cache key for fetched_load.lua), then BullMQ's
moveToFinished's 14 keys and F arguments for the job being completed (none with F = 0), and
last F. The reply then has a third element (below), and a fourth when the job was finished
here.

Returns {"applied", Applied JSON}, {"replay", recorded Applied JSON} or {"ignored", status};
composed, {"applied", Applied JSON, mask[, finish]}: mask has one character per ready follow-up,
"1" if its BullMQ job was added here (the worker adds the others); finish is moveToFinished's
reply when this script also finished the job: only if nothing is left for the worker to do
(every ready job added, nothing skipped, no loop end, the run goes on, no resume taken). With
fetch next, that reply is the next job's fetch, as moveToActive's, with load_fetched's load.
Error NORUN if the run does not exist.
Applied JSON: {"r": [[followup, 0], ...], "s": [[followup, status], ...],
               "l": [[[header id, prefix], [delivered edge indices], [Close, ...]], ...],
               "f": final status or null, "q": [output, action] of a taken resume}
A sleeping or parked transition, or a waiting one that took a buffered resume, stays in
flight. Returns {"ignored", status} for a subflow wait that is ignored (see "p").
A run that would end failed with completions to compensate (meta compN, no noCompensate) is
set compensating instead (docs/compensation.md); a paused run that would await stays paused.
]==]

-- composed.py assigns BullMQ's addStandardJob (a function of (KEYS, ARGV)) to ADD_JOB and its
-- moveToFinished to FINISH_JOB right after this line; their keys come last in KEYS.
local ADD_JOB, FINISH_JOB = nil, nil
local ADD_KEYS, FINISH_KEYS = 0, 0
-- With FINISH_JOB, lua/fetched_load.lua's load_fetched, for the job the finish fetches next.
local LOAD_FETCHED = nil
if ADD_JOB and tonumber(ARGV[#ARGV]) > 0 then
  FINISH_KEYS = 14
end

-- HSET `key` to the first `n` items of `list` (field, value, ...), at most 500 pairs a call.
-- (No upvalues: a closure that captures some costs each run of the script.)
local function hset_pairs(key, list, n)
  for i = 1, n, 1000 do
    redis.call('HSET', key, unpack(list, i, math.min(i + 999, n)))
  end
end

local TAKEN, FAILED_RES = 0, 2
local DEAD_ENTRY = '[1,null]'

local meta, ctx, errors, acts = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local joins, decided, fired, live = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local back, exits, waiting = KEYS[9], KEYS[10], KEYS[11]
local frontier = KEYS[12] -- what the run is owed (keys.py): this akey leaves, follow-ups enter

-- The run's status, its route for the composed add below and its inFlight count: one read
-- (this script writes neither the route nor inFlight before their use below, so reading them
-- here is reading them there).
local run = redis.call('HMGET', meta, 'status', 'queue', 'priority', 'routed', 'inFlight')
local status = run[1]
if not status then
  return redis.error_reply('NORUN run not found')
end
if FINISHED[status] or status == 'compensating' then
  return {'ignored', status}
end
local t = cjson.decode(ARGV[1])
local recorded = redis.call('HGET', acts, t.a)
if recorded then
  return {'replay', recorded}
end

-- A subflow activation driven by its child may wait already (it is then not in flight).
local was_waiting = t.p and redis.call('HEXISTS', waiting, t.b) == 1
if t.p and t.w then
  if redis.call('HEXISTS', acts, t.b) == 1
    or (was_waiting and (tonumber(redis.call('HGET', acts, t.b .. '~ep')) or -1) >= t.p) then
    return {'ignored', status}
  end
  redis.call('HSET', acts, t.b .. '~ep', t.p)
end

-- A wait that starts takes the oldest buffered resume naming its node, else the oldest naming
-- none (SPEC 9.7). Entries are "<node id JSON or null>\n<[output, action] JSON>".
local taken = nil
if t.q then
  local resume_list, fallback = KEYS[#KEYS - ADD_KEYS - FINISH_KEYS], nil
  for _, item in ipairs(redis.call('LRANGE', resume_list, 0, -1)) do
    local head = string.sub(item, 1, string.find(item, '\n', 1, true) - 1)
    if head == t.q then
      taken = item
      break
    end
    if head == 'null' and not fallback then
      fallback = item
    end
  end
  taken = taken or fallback
  if taken then
    redis.call('LREM', resume_list, 1, taken)
    taken = string.sub(taken, string.find(taken, '\n', 1, true) + 1)
  end
end

-- Writes, output, error, waiting mark. The context's writes and outputs in order, a run of
-- sets as one HSET (a delete writes the pending ones first).
local sets, n_sets = {}, 0
for _, op in ipairs(t.o) do
  if op[2] == 0 then
    hset_pairs(ctx, sets, n_sets)
    n_sets = 0
    redis.call('HDEL', ctx, op[1])
  else
    sets[n_sets + 1], sets[n_sets + 2] = op[1], ARGV[op[2]]
    n_sets = n_sets + 2
  end
end
for _, key in ipairs(t.k) do
  sets[n_sets + 1], sets[n_sets + 2] = key, ARGV[t.v]
  n_sets = n_sets + 2
end
hset_pairs(ctx, sets, n_sets)
if t.e and not t.I then -- an item's error counts only if it fails its batch (below)
  redis.call('RPUSH', errors, ARGV[t.e])
end
if t.m then -- a completion to compensate if the run fails (run_control.lua)
  redis.call('HSET', acts, '~comp:' .. redis.call('HINCRBY', meta, 'compN', 1), ARGV[t.m])
end
if t.w and not taken then
  redis.call('HSET', waiting, t.b, ARGV[t.w])
else
  redis.call('HDEL', waiting, t.b)
end
if not taken then -- a wait that took a buffered resume is still owed its completion
  redis.call('HDEL', frontier, t.b)
end
if t.y then
  redis.call('HSET', acts, t.y[1] .. '~sub', ARGV[t.y[2]])
end
if was_waiting and not t.w then -- a waiting subflow completes: the run is running again
  if status == 'awaiting' then
    redis.call('HINCRBY', meta, 'episode', 1)
  end
  if status ~= 'paused' then
    redis.call('HSET', meta, 'status', 'running')
  end
end
if t.z then
  redis.call('HSET', acts, t.z[1] .. '~wake', ARGV[t.z[3]])
  if tonumber(t.z[2]) > tonumber(redis.call('HGET', meta, 'wakeAt') or '0') then
    redis.call('HSET', meta, 'wakeAt', t.z[2])
  end
end

local ready, skipped, loop_ends = {}, {}, {}

local function open(counters)
  for _, counter in ipairs(counters) do
    redis.call('HINCRBY', live, counter, 1)
  end
end

-- Batches (SPEC 5.1, 9.7; memory._Batch). A batch's record is acts "<scatter akey>~bat" (cjson,
-- names and counts only): x next item, u items in flight, d items ended, f failed, p/q the
-- parked gather's followup JSON and akey. An item's [item] and a gather's [results] are acts
-- "<akey>~in" (load.lua returns them); an item's slot is acts "<item akey>~out", and a failed
-- item (collected or not) is marked "<item akey>~fail" for operators (inspection.py).
local function batch_get(key)
  local text = redis.call('HGET', acts, key .. '~bat')
  return text and cjson.decode(text)
end

local function batch_done(b)
  if b.f then
    return b.u == 0
  end
  return b.d == b.n
end

local function item_akey(b, i)
  return b.s .. '[' .. i .. ']@' .. b.t
end

-- Start items up to the in-flight cap (none once the batch failed).
local function start_items(b)
  while not b.f and b.x < b.n and (b.c == 0 or b.u < b.c) do
    local id = b.s .. '[' .. b.x .. ']'
    local target = id .. '@' .. b.t
    local entry = '[[' .. cjson.encode(target) .. ',' .. cjson.encode(id) .. ',' .. b.j .. '],'
      .. TAKEN .. ']'
    ready[#ready + 1] = entry
    redis.call('HSET', frontier, target, '["r",' .. entry .. ']')
    b.x, b.u = b.x + 1, b.u + 1
  end
end

-- A batch that ended: its results for the gather, and its parked gather released (ready, or
-- blocked if an item failed). Then the record is stored.
local function settle(key, b)
  if batch_done(b) then
    if not b.f then
      local slots = {}
      for i = 0, b.n - 1 do
        slots[#slots + 1] = redis.call('HGET', acts, item_akey(b, i) .. '~out') or 'null'
      end
      redis.call('HSET', acts, b.g .. '~in', '[[' .. table.concat(slots, ',') .. ']]')
    end
    if b.p then
      local entry = '[' .. b.p .. ',' .. (b.f and FAILED_RES or TAKEN) .. ']'
      if b.f then
        skipped[#skipped + 1] = entry
        redis.call('HSET', frontier, b.q, '["s",' .. entry .. ']')
      else
        ready[#ready + 1] = entry
        redis.call('HSET', frontier, b.q, '["r",' .. entry .. ']')
      end
      b.p, b.q = nil, nil
    end
  end
  redis.call('HSET', acts, key .. '~bat', cjson.encode(b))
end

if t.B then
  local B = t.B
  local b = {s = B.s, t = B.t, j = B.j, n = B.n, c = B.c, g = B.g, x = 0, u = 0, d = 0, f = false}
  for i = 0, B.n - 1 do
    redis.call('HSET', acts, item_akey(b, i) .. '~in', ARGV[B.v + i])
  end
  start_items(b)
  settle(B.k, b)
end
if t.I then
  local b = batch_get(t.I.k)
  b.u, b.d = b.u - 1, b.d + 1
  if t.I.f then
    redis.call('HSET', acts, t.a .. '~fail', '1')
  end
  if t.I.o then
    redis.call('HSET', acts, t.a .. '~out', ARGV[t.I.o])
  elseif not b.f then -- the first failure fails the batch and the run
    b.f = true
    redis.call('RPUSH', errors, ARGV[t.e])
  end
  start_items(b)
  settle(t.I.k, b)
end

-- A join of up to SMALL_JOIN predecessors reads its entries at each arrival (one HVALS: their
-- count is HLEN's); a larger one counts them first (HLEN), so an arrival does not read them all.
local SMALL_JOIN = 16

-- memory.decide: the join rule of SPEC 3.4 after `new_status` was added; nil = pending.
local function decide(jkey, expected, join_any, new_status)
  if join_any and new_status == TAKEN then
    return TAKEN
  end
  if new_status == FAILED_RES then
    return FAILED_RES
  end
  local entries
  if expected <= SMALL_JOIN then
    entries = redis.call('HVALS', jkey)
    if #entries < expected then
      return nil
    end
  elseif redis.call('HLEN', jkey) < expected then
    return nil
  else
    entries = redis.call('HVALS', jkey)
  end
  for _, entry in ipairs(entries) do
    if tonumber(string.match(entry, '^%[(%d+),')) == TAKEN then
      return TAKEN
    end
  end
  return 1 -- DEAD
end

-- A join record started over: `target` joins `joins`, and an older record of it is deleted. A
-- join key exists only for a member of `joins` (lib.lua's each_run_key finds them there), so
-- only a target that was a member already can have one: the DEL is needed only then.
local function fresh_record(jkey, target)
  if redis.call('SADD', joins, target) == 0 then
    redis.call('DEL', jkey)
  end
end

local function resolve(jkey, r)
  local target, pred, new_status, expected = r[1], r[2], r[3], r[5]
  local outcome
  if expected == 0 then
    -- One predecessor: this resolution decides the activation, unless it was decided already
    -- (SADD's reply tells; nothing else is written then).
    if redis.call('SADD', decided, target) == 0 then
      return
    end
    open(r[8])
    fresh_record(jkey, target)
    redis.call('HSET', jkey, pred, ARGV[r[4]])
    outcome = new_status
  else
    if redis.call('SISMEMBER', decided, target) == 1 then
      -- A late arrival at a decided join: kept aside, never read by a job (retry_run restores it).
      redis.call('HSETNX', acts, '~late:' .. cjson.encode({target, pred}), ARGV[r[4]])
      return
    end
    if redis.call('SADD', joins, target) == 1 then
      -- First seen: the record starts with the unreachable predecessors, dead.
      for _, dead in ipairs(r[7]) do
        redis.call('HSET', jkey, dead, DEAD_ENTRY)
      end
      open(r[8])
    end
    if redis.call('HSETNX', jkey, pred, ARGV[r[4]]) == 0 then
      return -- set membership: a predecessor counts once
    end
    outcome = decide(jkey, expected, r[6], new_status)
    if outcome == nil then
      return
    end
    redis.call('SADD', decided, target)
    if outcome == TAKEN and r[6] then
      redis.call('HSET', fired, target, pred)
    end
  end
  local b = outcome == TAKEN and r[10] and batch_get(r[10])
  if b then -- a gather: parked until its batch ends; blocked if the batch failed
    if not batch_done(b) then
      b.p, b.q = r[9], target
      redis.call('HSET', acts, r[10] .. '~bat', cjson.encode(b))
      return
    end
    if b.f then
      outcome = FAILED_RES
    end
  end
  local entry = '[' .. r[9] .. ',' .. outcome .. ']'
  redis.call('HSET', frontier, target, (outcome == TAKEN and '["r",' or '["s",') .. entry .. ']')
  if outcome == TAKEN then
    ready[#ready + 1] = entry
  else
    skipped[#skipped + 1] = entry
  end
end

for i, r in ipairs(t.r) do
  resolve(KEYS[FIXED_KEYS + i], r)
end

-- Back edges taken: the next iteration starts, once per iteration.
local first_next = FIXED_KEYS + #t.r
for i, n in ipairs(t.n) do
  if redis.call('SADD', back, n[1]) == 1 then
    local jkey = KEYS[first_next + i]
    open(n[5])
    fresh_record(jkey, n[2])
    redis.call('HSET', jkey, n[3], ARGV[n[4]])
    redis.call('SADD', decided, n[2])
    ready[#ready + 1] = '[' .. n[6] .. ',' .. TAKEN .. ']'
    redis.call('HSET', frontier, n[2], '["r",' .. ready[#ready] .. ']')
  end
end

-- Exit edges delivered, per loop instance (a set of edge indices: ",1,3,").
for _, x in ipairs(t.x) do
  local seen = redis.call('HGET', exits, x[1]) or ','
  if not string.find(seen, ',' .. x[2] .. ',', 1, true) then
    redis.call('HSET', exits, x[1], seen .. x[2] .. ',')
  end
end

-- Loop counters, innermost first; the first one to end with no back edge taken is a loop end,
-- and the counters after it are released by the loop-end transition (`rest`).
for position, c in ipairs(t.c) do
  local counter = c[1]
  local left = tonumber(redis.call('HGET', live, counter))
  if not left then
    return redis.error_reply('ERR loop counter ' .. counter .. ' is not open')
  end
  left = left - 1
  if left ~= 0 then
    redis.call('HSET', live, counter, left)
  else
    redis.call('HDEL', live, counter)
    if redis.call('SREM', back, counter) == 0 then
      local seen = redis.call('HGET', exits, c[2])
      redis.call('HDEL', exits, c[2])
      local delivered = {}
      if seen then
        for index in string.gmatch(seen, '%d+') do
          delivered[#delivered + 1] = tonumber(index)
        end
        table.sort(delivered)
      end
      local rest = {}
      for j = position + 1, #t.c do
        rest[#rest + 1] = t.c[j][3]
      end
      loop_ends[#loop_ends + 1] = '[' .. c[4] .. ',[' .. table.concat(delivered, ',')
        .. '],[' .. table.concat(rest, ',') .. ']]'
      redis.call('HSET', frontier, '~end:' .. c[2], '["l",' .. loop_ends[#loop_ends] .. ']')
      break
    end
  end
end

-- In-flight accounting and the final status.
-- A sleep, a parked subflow, or a wait that took a resume, stays in flight; a subflow that
-- waited was not in flight.
local ended = (t.z or t.y or taken or was_waiting) and 0 or 1
-- HINCRBY's count, written with progressAt in one HSET (an integer, as HINCRBY stores it).
local in_flight = tonumber(run[5] or '0') + #ready + #skipped + #loop_ends - ended
local now = now_s()
redis.call('HSET', meta, 'inFlight', in_flight, 'progressAt', now)
local final = nil
if in_flight == 0 then
  if redis.call('LLEN', errors) > 0 then
    final = 'failed'
  elseif redis.call('HLEN', waiting) > 0 then
    final = 'awaiting'
  elseif redis.call('SCARD', joins) > redis.call('SCARD', decided) then
    final = 'stalled' -- a join record never decided (decided is a subset of joins)
  else
    final = 'completed'
  end
  if final == 'failed' and redis.call('HGET', meta, 'compN')
      and not redis.call('HGET', meta, 'noCompensate') then
    final = 'compensating' -- live until the compensation job ends it (run_control.lua)
  elseif status == 'paused' and not FINISHED[final] then
    final = nil -- a paused run that awaits stays paused (unpause sets it awaiting)
  end
end
local applied = '{"r":[' .. table.concat(ready, ',') .. '],"s":[' .. table.concat(skipped, ',')
  .. '],"l":[' .. table.concat(loop_ends, ',') .. '],"f":'
  .. (final and ('"' .. final .. '"') or 'null') .. (taken and (',"q":' .. taken) or '') .. '}'
redis.call('HSET', acts, t.a, applied)
if final then
  if FINISHED[final] then
    finish(final, now, tonumber(ARGV[2]), ARGV[3])
  else
    redis.call('HSET', meta, 'status', final)
    if final == 'compensating' then
      redis.call('DEL', string.sub(ARGV[3], 1, -6) .. 'resume')
    end
  end
end
if not ADD_JOB then
  return {'applied', applied}
end

-- Composed (composed.py): the ready activations' BullMQ jobs, added by BullMQ's own script
-- after every write above (an add that fails leaves the transition applied and recorded; the
-- worker adds that job). Only what `BullMQJobQueue.entry` would add with the queue's plain
-- options: the run's queue is this one, it has no priority and no node with a queue of its own
-- (routed), and the node id needs no JSON escaping. The job data is `Job.to_data`'s JSON as json.dumps writes it.
local mask = {}
local finish_args = tonumber(ARGV[#ARGV])
local n = #ARGV - 1 - finish_args
local job_prefix, queue_name, job_name, opts_head, opts_tail, stamp =
  ARGV[n - 7], ARGV[n - 6], ARGV[n - 5], ARGV[n - 4], ARGV[n - 3], tonumber(ARGV[n - 2])
local our_prefix, cache_key = ARGV[n - 1], ARGV[n]
local plain = (not run[2] or run[2] == queue_name) and not (run[3] or run[4])
local queue_end = #KEYS - FINISH_KEYS
local queue_keys = {unpack(KEYS, queue_end - ADD_KEYS + 1, queue_end)}
local run_id = string.match(meta, '{([^{}]*)}:meta$')

-- A msgpack str (as msgpack-python packs it).
local function mp_str(s)
  local len = #s
  if len < 32 then
    return string.char(0xa0 + len) .. s
  elseif len < 256 then
    return '\217' .. string.char(len) .. s
  elseif len < 65536 then
    return '\218' .. string.char(math.floor(len / 256), len % 256) .. s
  end
  return '\219' .. string.char(math.floor(len / 16777216), math.floor(len / 65536) % 256,
    math.floor(len / 256) % 256, len % 256) .. s
end

local function add(entry)
  local f = cjson.decode(entry)[1]
  local node, iteration = f[2], f[3]
  if type(node) ~= 'string' or string.find(node, '[%c"\\\128-\255]') then
    return false
  end
  for _, i in ipairs(iteration) do
    if type(i) ~= 'number' or i < 0 or i >= 1e9 or math.floor(i) ~= i then
      return false
    end
  end
  local token = string.gsub(node, '[^A-Za-z0-9_.]', function(c)
    return string.format('~%02x', string.byte(c))
  end)
  local job_id = run_id .. '-' .. token .. '-'
    .. (#iteration == 0 and '0' or table.concat(iteration, '.'))
  local data = '{"runId":"' .. run_id .. '","nodeId":"' .. node .. '","iteration":['
    .. table.concat(iteration, ',') .. '],"kind":"node","seq":0}'
  local ok, result = pcall(ADD_JOB, queue_keys, {
    cmsgpack.pack({job_prefix, job_id, job_name, stamp}),
    data,
    opts_head .. mp_str(job_id) .. opts_tail,
    stamp,
  })
  return ok and result == job_id
end

-- At most ADD_MAX here: a fan-out's thousand adds would hold Redis in one script for tens
-- of milliseconds; the worker adds the others, pipelined.
local ADD_MAX = 100
local all_added = true
for i, entry in ipairs(ready) do
  mask[i] = (plain and run_id and i <= ADD_MAX and add(entry)) and '1' or '0'
  all_added = all_added and mask[i] == '1'
end
mask = table.concat(mask)
-- The job itself (composed.py): finished here when the worker has nothing left to do for it,
-- so no crash between this script and the worker's own moveToFinished can lose anything.
-- With fetch next in its arguments, the finish also fetches the slot's next job (a table
-- reply, as moveToActive's), which is loaded here as moveToActive+load would load it.
if FINISH_JOB and FINISH_KEYS > 0 and all_added and not final and #skipped == 0
    and #loop_ends == 0 and not taken then
  local ok, finished = pcall(FINISH_JOB, {unpack(KEYS, #KEYS - FINISH_KEYS + 1, #KEYS)},
    {unpack(ARGV, #ARGV - finish_args, #ARGV - 1)})
  if ok and type(finished) == 'table' and LOAD_FETCHED then
    local loaded, with_load = pcall(LOAD_FETCHED, finished, our_prefix, cache_key)
    if loaded then -- else the job goes without its load: the worker loads it
      finished = with_load
    end
  end
  if ok and (type(finished) == 'number' or type(finished) == 'table') then
    return {'applied', applied, mask, finished}
  end
end
return {'applied', applied, mask}
