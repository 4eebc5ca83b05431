--[[
  unlock: ends the lease `fence` and tells every process (PUBLISH) so lock waiters wake.
  KEYS[1] the session hash  KEYS[2] locks
  ARGV[1] prefix  ARGV[2] now  ARGV[3] id  ARGV[4] fence  ARGV[5] unlock channel
  Returns 1 when that lease was in force, 0 otherwise
]]
local now = tonumber(ARGV[2])
local r = load(KEYS[1])
if not live(r, now) or r.lf == nil or tonumber(r.lf) ~= tonumber(ARGV[4]) then return 0 end
local wasInForce = tonumber(r.le) > now
r.lo, r.lf, r.le = nil, nil, nil
save(KEYS[1], r)
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[5], ARGV[3])
if wasInForce then return 1 end
return 0
