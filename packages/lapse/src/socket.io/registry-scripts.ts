/**
 * Lua scripts of RedisRegistry. Kept as strings (not .lua files) so that they ship inside
 * the compiled module. Each is named `name-<numKeys>` after bullmq's convention.
 *
 * Key layout under a base such as `{lapse:presence}:` (the hash tag keeps every key in one
 * slot, so the scripts may touch the keys of any node):
 *   nodes                 SET    ids of nodes that registered
 *   total                 STRING live connections of live nodes
 *   users                 HASH   userId -> connections
 *   rooms                 HASH   room -> connections
 *   n:<node>:lease        STRING the node's lease token, PX leaseTtl; gone = node dead
 *   n:<node>:conns        HASH   sid -> userId ('' when anonymous)
 *   n:<node>:users        HASH   userId -> connections on that node
 *   n:<node>:rooms        HASH   room -> connections on that node
 * The cluster totals are the sums of the per-node hashes; a dead node's part is subtracted
 * (atomically, in the script) before any read, so reads only ever count live nodes.
 */

/** Numeric results of the scripts, mapped in one place. */
export const RESULT = {
  /** The node's lease is not held with this token: it was declared dead and must re-register. */
  NO_LEASE: -1,
} as const;

const HELPERS = `
local function decr(hash, field, by)
  local v = redis.call('HINCRBY', hash, field, -by)
  if v <= 0 then redis.call('HDEL', hash, field) end
end
local function subtract(from, into)
  local kv = redis.call('HGETALL', from)
  for i = 1, #kv, 2 do decr(into, kv[i], tonumber(kv[i + 1])) end
end
-- Removes everything a node contributed from the cluster totals, and its keys.
local function wipe(base, node)
  local nk = base .. 'n:' .. node .. ':'
  local n = redis.call('HLEN', nk .. 'conns')
  if n > 0 then redis.call('DECRBY', base .. 'total', n) end
  subtract(nk .. 'users', base .. 'users')
  subtract(nk .. 'rooms', base .. 'rooms')
  redis.call('DEL', nk .. 'conns', nk .. 'users', nk .. 'rooms')
end
-- Wipes every registered node whose lease has lapsed; returns how many.
local function reapDead(base)
  local reaped = 0
  for _, node in ipairs(redis.call('SMEMBERS', base .. 'nodes')) do
    if redis.call('EXISTS', base .. 'n:' .. node .. ':lease') == 0 then
      wipe(base, node)
      redis.call('SREM', base .. 'nodes', node)
      reaped = reaped + 1
    end
  end
  return reaped
end
`;

/**
 * apply-1: applies one node's batch of changes, in order.
 * KEYS[1] base..'nodes'. ARGV: base, node, lease token, lease ttl (ms), then triples (op, sid, arg):
 *   R - -       claim: wipe the node's old part, take the lease, join the node set
 *   X - -       leave: wipe the node's part, drop the lease and the node
 *   c sid uid   connect            d sid -     disconnect
 *   j sid room  join a room        l sid room  leave a room
 * Returns the number of ops applied, or NO_LEASE (nothing applied) when a batch that does
 * not start with R or X comes from a node whose lease is not held with this token.
 */
export const APPLY = `${HELPERS}
local base, node, token, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local nk = base .. 'n:' .. node .. ':'
local first = ARGV[5]
if first ~= 'R' and first ~= 'X' and redis.call('GET', nk .. 'lease') ~= token then return ${RESULT.NO_LEASE} end
local applied = 0
for i = 5, #ARGV, 3 do
  local op, sid, arg = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if op == 'c' then
    if redis.call('HSETNX', nk .. 'conns', sid, arg) == 1 then
      redis.call('INCR', base .. 'total')
      if arg ~= '' then
        redis.call('HINCRBY', nk .. 'users', arg, 1)
        redis.call('HINCRBY', base .. 'users', arg, 1)
      end
    end
  elseif op == 'd' then
    local uid = redis.call('HGET', nk .. 'conns', sid)
    if uid then
      redis.call('HDEL', nk .. 'conns', sid)
      redis.call('DECR', base .. 'total')
      if uid ~= '' then
        decr(nk .. 'users', uid, 1)
        decr(base .. 'users', uid, 1)
      end
    end
  elseif op == 'j' then
    redis.call('HINCRBY', nk .. 'rooms', arg, 1)
    redis.call('HINCRBY', base .. 'rooms', arg, 1)
  elseif op == 'l' then
    if (tonumber(redis.call('HGET', nk .. 'rooms', arg)) or 0) > 0 then
      decr(nk .. 'rooms', arg, 1)
      decr(base .. 'rooms', arg, 1)
    end
  elseif op == 'R' then
    wipe(base, node)
    redis.call('SET', nk .. 'lease', token, 'PX', ttl)
    redis.call('SADD', KEYS[1], node)
  elseif op == 'X' then
    wipe(base, node)
    if redis.call('GET', nk .. 'lease') == token then redis.call('DEL', nk .. 'lease') end
    redis.call('SREM', KEYS[1], node)
  end
  applied = applied + 1
end
return applied
`;

/**
 * heartbeat-1: renews the node's lease if it still holds it, then reaps dead nodes.
 * KEYS[1] base..'nodes'. ARGV: base, node, lease token, lease ttl (ms).
 * Returns { renewed (1|0), reaped nodes }.
 */
export const HEARTBEAT = `${HELPERS}
local base, node, token, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local lease = base .. 'n:' .. node .. ':lease'
local renewed = 0
if redis.call('GET', lease) == token then
  redis.call('PEXPIRE', lease, ttl)
  renewed = 1
end
return { renewed, reapDead(base) }
`;

/**
 * stats-1: the cluster figures, dead nodes reaped first.
 * KEYS[1] base..'nodes'. ARGV: base.
 * Returns { total, unique users, live nodes, { room, count, room, count, … } }.
 */
export const STATS = `${HELPERS}
local base = ARGV[1]
reapDead(base)
return {
  tonumber(redis.call('GET', base .. 'total')) or 0,
  redis.call('HLEN', base .. 'users'),
  redis.call('SCARD', KEYS[1]),
  redis.call('HGETALL', base .. 'rooms'),
}
`;

/**
 * count-1: connections of one user ('u') or one room ('r'), dead nodes reaped first.
 * KEYS[1] base..'nodes'. ARGV: base, kind, name. Returns a number.
 */
export const COUNT = `${HELPERS}
local base, kind, name = ARGV[1], ARGV[2], ARGV[3]
reapDead(base)
local hash = base .. (kind == 'u' and 'users' or 'rooms')
return tonumber(redis.call('HGET', hash, name)) or 0
`;

/**
 * nodes-1: ids of the live nodes, dead nodes reaped first.
 * KEYS[1] base..'nodes'. ARGV: base.
 */
export const NODES = `${HELPERS}
reapDead(ARGV[1])
return redis.call('SMEMBERS', KEYS[1])
`;
