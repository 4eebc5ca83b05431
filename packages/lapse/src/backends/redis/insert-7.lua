--[[
  insert: adds a session, making room first (per-user cap, then expired, then LRU), or
  replaces a live one with the same id.
  KEYS[1] exp  KEYS[2] lru  KEYS[3] ids  KEYS[4] users  KEYS[5] locks  KEYS[6] seq
  KEYS[7] the session hash
  ARGV[1] prefix  ARGV[2] now  ARGV[3] expiry grace ms  ARGV[4] replace '1'|'0'
  ARGV[5] fence ('' none)  ARGV[6] maxSessions ('' none)  ARGV[7] maxSessionsPerUser ('' none)
  ARGV[8] id  ARGV[9] the record as stored (JSON, see _lib.lua)
  Returns {0, stored record, ended triples} | {2, owner, leaseExpiresAt} LOCKED | {4} EXISTS
]]
local I = { exp = KEYS[1], lru = KEYS[2], ids = KEYS[3], users = KEYS[4], locks = KEYS[5], seq = KEYS[6] }
local now = tonumber(ARGV[2])
local grace = tonumber(ARGV[3])
local fence = tonumber(ARGV[5])
local maxSessions = tonumber(ARGV[6])
local maxPerUser = tonumber(ARGV[7])
local id = ARGV[8]
local rec = cjson.decode(ARGV[9])

local ended = {}
local old = load(KEYS[7])
if live(old, now) then
  if ARGV[4] ~= '1' then return { 4 } end
  if lockedFor(old, now, fence) then return { 2, old.lo, old.le } end
  -- A replace keeps what belongs to the session's history, takes the rest from rec.
  rec.c, rec.x, rec.n = old.c, old.x, old.n
  rec.lo, rec.lf, rec.le = old.lo, old.lf, old.le
  rec.v = num(tonumber(old.v) + 1)
  rec.e = num(math.min(tonumber(rec.a) + tonumber(rec.t), tonumber(old.x)))
  drop(I, id, old)
  if rec.u and rec.u ~= old.u then capUser(I, rec.u, now, maxPerUser, ended) end
else
  if old then finish(I, id, old, reasonOf(tonumber(old.e), tonumber(old.x)), ended) end
  if rec.u then capUser(I, rec.u, now, maxPerUser, ended) end
  if maxSessions then
    while redis.call('ZCARD', I.ids) >= maxSessions do
      local top = redis.call('ZRANGE', I.exp, 0, 0, 'WITHSCORES')
      if top[1] and tonumber(top[2]) <= now then
        expireMember(I, top[1], tonumber(top[2]), now, ended)
      else
        local lru = redis.call('ZRANGE', I.lru, 0, 0)[1]
        if lru == nil then break end
        endIndexed(I, lru, nil, now, 'evicted', ended)
      end
    end
  end
end

local text = write(KEYS[7], rec, now, grace)
index(I, id, rec)
return { 0, text, ended }
