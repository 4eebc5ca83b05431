--[[
  jobRelease: deletes a job lease only while the caller's token still holds it.
  KEYS[1] the lease key
  ARGV[1] prefix  ARGV[2] token
  Returns 1 released | 0 not held by this token
]]
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
return 1
