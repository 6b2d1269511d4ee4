for i, key in ipairs(KEYS) do
  if redis.call('HGET', key, 'status') == 'pending' then
    redis.call('HSET', key, 'next_attempt_at', ARGV[2])
    redis.call('ZADD', ARGV[1], ARGV[2], ARGV[2 + i])
  end
end
return 1
