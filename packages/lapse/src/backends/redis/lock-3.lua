--[[
  lock: grants a lease with a new fencing number from a counter that only grows.
  KEYS[1] the session hash  KEYS[2] locks  KEYS[3] fence counter
  ARGV[1] prefix  ARGV[2] now  ARGV[3] id  ARGV[4] owner  ARGV[5] ttl ms
  ARGV[6] the fence to grant, drawn beforehand from a cluster-wide counter ('' or absent: INCR KEYS[3])
  Returns {0, owner, fence, expiresAt} | {1} NOT_FOUND | {2, owner, leaseExpiresAt} LOCKED
]]
local now = tonumber(ARGV[2])
local r = load(KEYS[1])
if not live(r, now) then return { 1 } end
if r.lf and tonumber(r.le) > now then return { 2, r.lo, r.le } end
local fence = tonumber(ARGV[6])
if fence == nil then fence = redis.call('INCR', KEYS[3]) end
local expiresAt = num(now + tonumber(ARGV[5]))
r.lo, r.lf, r.le = ARGV[4], num(fence), expiresAt
save(KEYS[1], r)
redis.call('ZADD', KEYS[2], expiresAt, ARGV[3])
return { 0, ARGV[4], fence, expiresAt }
