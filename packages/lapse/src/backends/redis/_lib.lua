--[[
  Shared helpers, prepended to every script by scripts.ts (Redis Lua has no includes).
  Every script takes the key prefix as ARGV[1].

  A session is one string key holding a JSON object (one GET reads it whole). Keys are short
  because every session pays for them; numbers are digit strings because Redis's cjson
  keeps only 14 significant digits:
    h secretHash   u userId (absent: null)   d data (JSON text, as a string)
    c createdAt    a lastAccessedAt          e expiresAt      x absoluteExpiresAt
    t idleTimeout  n accessCount             v version
    lo lf le       lease owner / fence / expiresAt (absent: no lease)
    ip ua          meta (absent: null)

  Expiry-index members are "<id>\0<absoluteExpiresAt>" or "<id>\0<absoluteExpiresAt>\0<userId>":
  the sweep can then clean the per-user index and name the reason even when Redis has
  already dropped the session at its native expiry.

  Index keys: I.exp (score expiresAt), I.lru (score seq), I.ids (score 0, id order),
  I.users (set of user ids with sessions), P.."userorder" (the same user ids in a zset, all
  scores 0, for user id prefix scans; kept with I.users), I.locks (score lease expiresAt),
  per user P.."u:{<userId>}" (score seq). seq is a counter: LRU order is the order of
  accesses, as in the memory backend.
]]
local P = ARGV[1]

local function skey(id) return P .. 's:{' .. id .. '}' end
-- The ordered user index (keys.ts userOrder): the users set's members, in a zset for ZRANGEBYLEX.
local UORDER = P .. 'userorder'
local function ukey(uid) return P .. 'u:{' .. uid .. '}' end

-- Integers as plain digits: Lua's tostring would write 1e+14.
local function num(x) return string.format('%d', x) end

-- The session stored at `key` as a table, and as its stored text; nil when there is none.
local function load(key)
  local text = redis.call('GET', key)
  if not text then return nil end
  return cjson.decode(text), text
end

-- Rewrites a session in place, keeping its native expiry; returns the stored text.
local function save(key, r)
  local text = cjson.encode(r)
  redis.call('SET', key, text, 'KEEPTTL')
  return text
end

local function live(r, now) return r ~= nil and tonumber(r.e) > now end

-- True when a lease is in force and `fence` (nil: none) is not its fence.
local function lockedFor(r, now, fence)
  if r.lf == nil or tonumber(r.le) <= now then return false end
  return tonumber(r.lf) ~= fence
end

local function reasonOf(expiresAt, absoluteExpiresAt)
  if expiresAt >= absoluteExpiresAt then return 'absolute' end
  return 'idle'
end

local function expMember(id, r)
  if r.u then return id .. '\0' .. r.x .. '\0' .. r.u end
  return id .. '\0' .. r.x
end

-- Native expiry: the remaining lifetime on the caller's clock plus a grace, counted on
-- Redis's own clock (see docs/redis.md, "Clocks").
local function ttl(r, now, grace) return num(math.max(1, tonumber(r.e) - now) + grace) end

-- Writes a session with its native expiry; returns the stored text.
local function write(key, r, now, grace)
  local text = cjson.encode(r)
  redis.call('SET', key, text, 'PX', ttl(r, now, grace))
  return text
end

local function index(I, id, r)
  local seq = redis.call('INCR', I.seq)
  redis.call('ZADD', I.exp, r.e, expMember(id, r))
  redis.call('ZADD', I.lru, seq, id)
  redis.call('ZADD', I.ids, 0, id)
  if r.u then
    redis.call('ZADD', ukey(r.u), seq, id)
    if redis.call('SADD', I.users, r.u) == 1 then redis.call('ZADD', UORDER, 0, r.u) end
  end
  if r.lf then redis.call('ZADD', I.locks, r.le, id) end
end

local function unindexUser(I, id, uid)
  local uk = ukey(uid)
  redis.call('ZREM', uk, id)
  if redis.call('EXISTS', uk) == 0 then
    redis.call('SREM', I.users, uid)
    redis.call('ZREM', UORDER, uid)
  end
end

-- Removes every index entry of `id` except its expiry entry (whose member may be unknown).
local function unindexRest(I, id, uid)
  redis.call('ZREM', I.lru, id)
  redis.call('ZREM', I.ids, id)
  redis.call('ZREM', I.locks, id)
  if uid then unindexUser(I, id, uid) end
end

local function drop(I, id, r)
  redis.call('DEL', skey(id))
  redis.call('ZREM', I.exp, expMember(id, r))
  unindexRest(I, id, r.u)
end

local function pushEnded(ended, id, uid, reason)
  ended[#ended + 1] = id
  ended[#ended + 1] = uid or false
  ended[#ended + 1] = reason
end

local function finish(I, id, r, reason, ended)
  drop(I, id, r)
  pushEnded(ended, id, r.u, reason)
end

-- Ends the session behind one expiry-index member whose score is <= now.
local function expireMember(I, member, score, now, ended)
  local i = string.find(member, '\0', 1, true)
  local id = string.sub(member, 1, i - 1)
  local rest = string.sub(member, i + 1)
  local j = string.find(rest, '\0', 1, true)
  local abs, uid = rest, nil
  if j then
    abs = string.sub(rest, 1, j - 1)
    uid = string.sub(rest, j + 1)
  end
  local r = load(skey(id))
  if r and expMember(id, r) == member then
    if live(r, now) then
      redis.call('ZADD', I.exp, r.e, member) -- never expected; keeps the loop finite
    else
      finish(I, id, r, reasonOf(tonumber(r.e), tonumber(r.x)), ended)
    end
  elseif r then
    -- A newer session took this id after Redis dropped the old hash: only the stale entry goes.
    redis.call('ZREM', I.exp, member)
    if uid and uid ~= r.u then unindexUser(I, id, uid) end
  else
    -- Redis dropped the hash at its native expiry; the member still names user and reason.
    redis.call('ZREM', I.exp, member)
    unindexRest(I, id, uid)
    pushEnded(ended, id, uid, reasonOf(score, tonumber(abs)))
  end
end

-- Ends session `id` found in an index: a live one for `liveReason`, an expired one for its
-- expiry reason. When Redis already dropped the key, only the index entries go: the sweep
-- reports that session from its expiry-index member.
local function endIndexed(I, id, uid, now, liveReason, ended)
  local r = load(skey(id))
  if r == nil then
    unindexRest(I, id, uid)
  elseif live(r, now) then
    finish(I, id, r, liveReason, ended)
  else
    finish(I, id, r, reasonOf(tonumber(r.e), tonumber(r.x)), ended)
  end
end

-- Ends the user's least recently used sessions until fewer than `cap` remain.
local function capUser(I, uid, now, cap, ended)
  if cap == nil then return end
  local uk = ukey(uid)
  while redis.call('ZCARD', uk) >= cap do
    local id = redis.call('ZRANGE', uk, 0, 0)[1]
    if id == nil then break end
    endIndexed(I, id, uid, now, 'evicted', ended)
  end
end
