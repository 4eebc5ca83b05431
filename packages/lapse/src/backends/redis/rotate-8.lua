--[[
  rotate: moves a live session to a new id and secret hash; same data, user, createdAt,
  absolute cap and version; lastAccessedAt = now; no lease. The old id is gone at once.
  KEYS[1] exp  KEYS[2] lru  KEYS[3] ids  KEYS[4] users  KEYS[5] locks  KEYS[6] seq
  KEYS[7] the old session hash  KEYS[8] the new session hash
  ARGV[1] prefix  ARGV[2] now  ARGV[3] expiry grace ms  ARGV[4] old id  ARGV[5] new id
  ARGV[6] new secret hash  ARGV[7] fence ('' none)
  Returns {0, stored record} | {1} NOT_FOUND | {2, owner, leaseExpiresAt} LOCKED | {4} EXISTS
]]
local I = { exp = KEYS[1], lru = KEYS[2], ids = KEYS[3], users = KEYS[4], locks = KEYS[5], seq = KEYS[6] }
local now = tonumber(ARGV[2])
local r = load(KEYS[7])
if not live(r, now) then return { 1 } end
if lockedFor(r, now, tonumber(ARGV[7])) then return { 2, r.lo, r.le } end
if redis.call('EXISTS', KEYS[8]) == 1 then return { 4 } end
drop(I, ARGV[4], r)
r.h = ARGV[6]
r.a = num(now)
r.e = num(math.min(now + tonumber(r.t), tonumber(r.x)))
r.lo, r.lf, r.le = nil, nil, nil
local text = write(KEYS[8], r, now, tonumber(ARGV[3]))
index(I, ARGV[5], r)
return { 0, text }
