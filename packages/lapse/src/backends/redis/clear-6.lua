--[[
  clear: deletes one batch of sessions and index keys; the caller repeats until it returns 0.
  KEYS[1] exp  KEYS[2] lru  KEYS[3] ids  KEYS[4] users  KEYS[5] locks  KEYS[6] seq
  ARGV[1] prefix  ARGV[2] batch size
  Returns 1 while there is more to delete, 0 when done
]]
local batch = tonumber(ARGV[2])
local ids = redis.call('ZRANGE', KEYS[3], 0, batch - 1)
if #ids > 0 then
  for _, id in ipairs(ids) do redis.call('UNLINK', skey(id)) end
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, #ids - 1)
  return 1
end
local users = redis.call('SPOP', KEYS[4], batch)
if #users > 0 then
  for _, uid in ipairs(users) do redis.call('UNLINK', ukey(uid)) end
  return 1
end
-- Cluster layout: the notes of buckets holding a user's caller-chosen ids (P x:{uid}), listed in P xs.
local noted = redis.call('SPOP', P .. 'xs', batch)
if #noted > 0 then
  for _, uid in ipairs(noted) do redis.call('UNLINK', P .. 'x:{' .. uid .. '}') end
  return 1
end
-- The fence and seq counters stay: fencing numbers must keep growing.
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[5], UORDER)
return 0
