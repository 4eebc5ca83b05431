--[[
  extendLock: moves the end of the lease `fence` to now + ttl while it is in force.
  KEYS[1] the session hash  KEYS[2] locks
  ARGV[1] prefix  ARGV[2] now  ARGV[3] id  ARGV[4] fence  ARGV[5] ttl ms
  Returns {0, owner, fence, expiresAt} | {1} NOT_FOUND | {2} LOCKED (that lease is not in force)
]]
local now = tonumber(ARGV[2])
local r = load(KEYS[1])
if not live(r, now) then return { 1 } end
if r.lf == nil or tonumber(r.le) <= now or tonumber(r.lf) ~= tonumber(ARGV[4]) then return { 2 } end
local expiresAt = num(now + tonumber(ARGV[5]))
r.le = expiresAt
save(KEYS[1], r)
redis.call('ZADD', KEYS[2], expiresAt, ARGV[3])
return { 0, r.lo, r.lf, expiresAt }
