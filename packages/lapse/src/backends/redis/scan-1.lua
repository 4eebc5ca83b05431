--[[
  scan: live sessions with id > afterId, in id order, at most `limit`.
  KEYS[1] ids
  ARGV[1] prefix  ARGV[2] now  ARGV[3] afterId ('' from the start)  ARGV[4] limit
  Returns {0, {id, stored record}...}
]]
local now = tonumber(ARGV[2])
local limit = tonumber(ARGV[4])
local from = '-'
if ARGV[3] ~= '' then from = '(' .. ARGV[3] end
local out = {}
while #out < limit do
  local ids = redis.call('ZRANGEBYLEX', KEYS[1], from, '+', 'LIMIT', 0, limit)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local r, text = load(skey(id))
    if live(r, now) then
      out[#out + 1] = { id, text }
      if #out == limit then break end
    end
  end
  from = '(' .. ids[#ids]
end
return { 0, out }
