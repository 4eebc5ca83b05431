--[[
  stats: counts from the indexes, no scan.
  KEYS[1] ids  KEYS[2] users  KEYS[3] locks
  ARGV[1] prefix  ARGV[2] now
  Returns {sessions, users, locked}
]]
return {
  redis.call('ZCARD', KEYS[1]),
  redis.call('SCARD', KEYS[2]),
  redis.call('ZCOUNT', KEYS[3], '(' .. ARGV[2], '+inf'),
}
