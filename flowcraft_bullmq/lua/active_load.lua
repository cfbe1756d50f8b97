--[==[ active_load: BullMQ's moveToActive, then our load of the job it fetched (composed.py).
Not a script on its own: composed.py puts the installed BullMQ's moveToActive-11.lua in front
of it as MOVE_TO_ACTIVE, load.lua as LOAD, and lua/fetched_load.lua (`load_fetched`).

KEYS[1..11], ARGV[1..3]  BullMQ's moveToActive's, as its worker passes them
ARGV[4]  our key prefix (RedisCoordinationStore.prefix)
ARGV[5]  the preload cache (hash; fetched_load.lua)

Returns what load_fetched returns for moveToActive's reply. Read only, past moveToActive.
]==]

return load_fetched(MOVE_TO_ACTIVE(KEYS, ARGV), ARGV[4], ARGV[5])
