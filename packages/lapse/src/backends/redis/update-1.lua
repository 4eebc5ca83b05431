--[[
  update: replaces the data of a live session, version + 1, after the lease and version checks.
  KEYS[1] the session hash
  ARGV[1] prefix  ARGV[2] now  ARGV[3] data  ARGV[4] expectedVersion ('' none)  ARGV[5] fence ('' none)
  Returns {0, stored record} | {1} NOT_FOUND | {2, owner, leaseExpiresAt} LOCKED
        | {3, version} VERSION_CONFLICT
]]
local now = tonumber(ARGV[2])
local expected = tonumber(ARGV[4])
local r = load(KEYS[1])
if not live(r, now) then return { 1 } end
if lockedFor(r, now, tonumber(ARGV[5])) then return { 2, r.lo, r.le } end
if expected ~= nil and expected ~= tonumber(r.v) then return { 3, r.v } end
r.d = ARGV[3]
r.v = num(tonumber(r.v) + 1)
return { 0, save(KEYS[1], r) }
