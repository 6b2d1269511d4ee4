if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then return 0 end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if ARGV[1] == 'delivered' then
  redis.call('HSET', KEYS[1], 'status', 'delivered', 'delivered_at', ARGV[2], 'last_error', '')
  redis.call('ZREM', KEYS[2], ARGV[5])
elseif ARGV[1] == 'retry' then
  redis.call('HSET', KEYS[1], 'next_attempt_at', ARGV[2], 'last_error', ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
else
  redis.call('HSET', KEYS[1], 'status', 'dead', 'last_error', ARGV[3])
  redis.call('ZREM', KEYS[2], ARGV[5])
  local tenant = redis.call('HGET', KEYS[1], 'tenant')
  redis.call('ZADD', ARGV[4] .. ':deliveries:dead:' .. tenant, redis.call('HGET', KEYS[1], 'created_at'), ARGV[5])
end
return 1
