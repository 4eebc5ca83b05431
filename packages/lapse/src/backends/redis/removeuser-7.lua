--[[
  removeUser: ends every session of a user (leases do not protect them) except one.
  KEYS[1] exp  KEYS[2] lru  KEYS[3] ids  KEYS[4] users  KEYS[5] locks  KEYS[6] seq
  KEYS[7] the user's index
  ARGV[1] prefix  ARGV[2] now  ARGV[3] userId  ARGV[4] except id ('' with ARGV[5] '0': none)
  ARGV[5] '1' when ARGV[4] is an id
  Returns {0, ended triples}
]]
local I = { exp = KEYS[1], lru = KEYS[2], ids = KEYS[3], users = KEYS[4], locks = KEYS[5], seq = KEYS[6] }
local now = tonumber(ARGV[2])
local uid = ARGV[3]
local except = nil
if ARGV[5] == '1' then except = ARGV[4] end
local ended = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[7], 0, -1)) do
  if id ~= except then endIndexed(I, id, uid, now, 'revoked', ended) end
end
return { 0, ended }
