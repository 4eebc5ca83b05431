--[[
  remove: deletes a live session and its index entries.
  KEYS[1] exp  KEYS[2] lru  KEYS[3] ids  KEYS[4] users  KEYS[5] locks  KEYS[6] seq
  KEYS[7] the session hash
  ARGV[1] prefix  ARGV[2] now  ARGV[3] id  ARGV[4] fence ('' none)  ARGV[5] force '1'|'0'
  Returns {0, stored record} | {0} none live | {2, owner, leaseExpiresAt} LOCKED
]]
local I = { exp = KEYS[1], lru = KEYS[2], ids = KEYS[3], users = KEYS[4], locks = KEYS[5], seq = KEYS[6] }
local now = tonumber(ARGV[2])
local r, text = load(KEYS[7])
if not live(r, now) then return { 0 } end
if ARGV[5] ~= '1' and lockedFor(r, now, tonumber(ARGV[4])) then return { 2, r.lo, r.le } end
drop(I, ARGV[3], r)
return { 0, text }
