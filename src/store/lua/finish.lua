local p, group, status, now, retention = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'queued' and st ~= 'running' then return 0 end
local tenant = redis.call('HGET', KEYS[1], 'tenant')
if st == 'queued' then
  redis.call('DECR', p .. ':queued:' .. tenant)
  redis.call('DECR', p .. ':queued')
end
redis.call('HSET', KEYS[1], 'status', status, 'finished_at', now)
redis.call('ZREM', p .. ':running:' .. tenant, redis.call('HGET', KEYS[1], 'id'))
if ARGV[6] == '1' then redis.call('HSET', KEYS[1], 'result', ARGV[7]) end
if ARGV[8] == '1' then redis.call('HSET', KEYS[1], 'error', ARGV[9]) end
final(p, group, tenant, retention)
if ARGV[10] == '1' then
  local did, created, due = ARGV[11], ARGV[12], ARGV[13]
  local dkey = p .. ':delivery:' .. did
  redis.call('HSET', dkey, unpack(ARGV, 14))
  redis.call('PEXPIRE', dkey, retention * 2)
  redis.call('ZADD', p .. ':deliveries:due', due, did)
  redis.call('ZADD', p .. ':deliveries:exec:' .. redis.call('HGET', KEYS[1], 'id'), created, did)
  redis.call('PEXPIRE', p .. ':deliveries:exec:' .. redis.call('HGET', KEYS[1], 'id'), retention * 2)
end
return 1
