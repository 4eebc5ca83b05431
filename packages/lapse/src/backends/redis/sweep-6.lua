--[[
  sweep: ends up to `limit` expired sessions, soonest-expired first, from the expiry index,
  and trims up to `limit` ended leases from the lease index.
  KEYS[1] exp  KEYS[2] lru  KEYS[3] ids  KEYS[4] users  KEYS[5] locks  KEYS[6] seq
  ARGV[1] prefix  ARGV[2] now  ARGV[3] limit
  Returns {0, ended triples}
]]
local I = { exp = KEYS[1], lru = KEYS[2], ids = KEYS[3], users = KEYS[4], locks = KEYS[5], seq = KEYS[6] }
local now = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local ended = {}
local due = redis.call('ZRANGEBYSCORE', I.exp, '-inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #due, 2 do expireMember(I, due[i], tonumber(due[i + 1]), now, ended) end
local stale = redis.call('ZRANGEBYSCORE', I.locks, '-inf', ARGV[2], 'LIMIT', 0, limit)
if #stale > 0 then redis.call('ZREM', I.locks, unpack(stale)) end
return { 0, ended }
