--[[
  touch: records accesses at time `at` (lastAccessedAt = max(old, at)), recomputes the
  expiry under the absolute cap, and moves the session to the most recently used end.
  KEYS[1] exp  KEYS[2] lru  KEYS[3] ids  KEYS[4] users  KEYS[5] locks  KEYS[6] seq
  KEYS[7] the session hash
  ARGV[1] prefix  ARGV[2] now  ARGV[3] expiry grace ms  ARGV[4] id  ARGV[5] at  ARGV[6] accesses
  Returns {0, stored record} | {1} not live
]]
local I = { exp = KEYS[1], lru = KEYS[2], ids = KEYS[3], users = KEYS[4], locks = KEYS[5], seq = KEYS[6] }
local now = tonumber(ARGV[2])
local id = ARGV[4]
local at = tonumber(ARGV[5])
local r = load(KEYS[7])
if not live(r, now) then return { 1 } end
if at > tonumber(r.a) then r.a = num(at) end
r.n = num(tonumber(r.n) + tonumber(ARGV[6]))
r.e = num(math.min(tonumber(r.a) + tonumber(r.t), tonumber(r.x)))
local text = write(KEYS[7], r, now, tonumber(ARGV[3]))
local seq = redis.call('INCR', I.seq)
redis.call('ZADD', I.exp, r.e, expMember(id, r))
redis.call('ZADD', I.lru, seq, id)
if r.u then redis.call('ZADD', ukey(r.u), seq, id) end
return { 0, text }
