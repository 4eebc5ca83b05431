--[[
  userorderfill: one step of filling the ordered user index from the users set (data written
  before the index existed); the caller repeats from the returned cursor until it is '0'.
  KEYS[1] users  KEYS[2] userorder
  ARGV[1] prefix  ARGV[2] SSCAN cursor  ARGV[3] count
  Returns the next cursor
]]
local step = redis.call('SSCAN', KEYS[1], ARGV[2], 'COUNT', ARGV[3])
for _, uid in ipairs(step[2]) do
  if redis.call('EXISTS', ukey(uid)) == 1 then redis.call('ZADD', KEYS[2], 0, uid) end
end
return step[1]
