--[[
  listUser: the user's live sessions, most recently used first.
  KEYS[1] the user's index
  ARGV[1] prefix  ARGV[2] now
  Returns {0, {id, stored record}...}
]]
local now = tonumber(ARGV[2])
local out = {}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local r, text = load(skey(id))
  if live(r, now) then out[#out + 1] = { id, text } end
end
return { 0, out }
