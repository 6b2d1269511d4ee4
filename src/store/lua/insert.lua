if KEYS[6] ~= '' then
  if not redis.call('SET', KEYS[6], ARGV[1], 'NX') then return 0 end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
local sid = redis.call('XADD', KEYS[3], '*', 'id', ARGV[1])
redis.call('HSET', KEYS[1], 'sid', sid)
redis.call('INCR', KEYS[4])
redis.call('INCR', KEYS[5])
return 1
