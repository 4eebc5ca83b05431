--[[
  jobRenew: extends a job lease only while the caller's token still holds it.
  KEYS[1] the lease key
  ARGV[1] prefix  ARGV[2] token  ARGV[3] ttl ms
  Returns 1 renewed | 0 not held by this token
]]
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
