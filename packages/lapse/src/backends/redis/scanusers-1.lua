--[[
  scanusers: users whose id starts with `userPrefix` and is greater than afterUserId, in user
  id order (byte order), at most `limit`, each with its stored session count.
  KEYS[1] userorder
  ARGV[1] prefix  ARGV[2] userPrefix  ARGV[3] where to start, as ZRANGEBYLEX takes it ('[' .. userPrefix,
  or '(' .. afterUserId when that sorts after the prefix: chosen by the caller, as Lua compares
  strings by the server's locale)  ARGV[4] limit
  Returns {0, {userId, sessions}...}
]]
local pfx = ARGV[2]
local limit = tonumber(ARGV[4])
local from = ARGV[3]
local out = {}
while #out < limit do
  local uids = redis.call('ZRANGEBYLEX', KEYS[1], from, '+', 'LIMIT', 0, limit)
  if #uids == 0 then break end
  for _, uid in ipairs(uids) do
    if string.sub(uid, 1, #pfx) ~= pfx then return { 0, out } end
    local n = redis.call('ZCARD', ukey(uid))
    -- An entry whose user has no index left (only after a backfill raced a removal) is skipped.
    if n > 0 then
      out[#out + 1] = { uid, n }
      if #out == limit then break end
    end
  end
  from = '(' .. uids[#uids]
end
return { 0, out }
