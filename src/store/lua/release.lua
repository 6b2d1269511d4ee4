local p, sid, group = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', KEYS[1], 'status') ~= 'running' or redis.call('HGET', KEYS[1], 'sid') ~= sid then return 0 end
redis.call('XACK', KEYS[2], group, sid)
redis.call('XDEL', KEYS[2], sid)
local tenant = redis.call('HGET', KEYS[1], 'tenant')
local id = redis.call('HGET', KEYS[1], 'id')
redis.call('ZREM', p .. ':running:' .. tenant, id)
redis.call('INCR', p .. ':queued:' .. tenant)
redis.call('INCR', p .. ':queued')
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '1')
local new = redis.call('XADD', KEYS[2], '*', 'id', id)
redis.call('HSET', KEYS[1], 'status', 'queued', 'sid', new, 'attempts', math.max(attempts - 1, 0))
redis.call('HDEL', KEYS[1], 'started_at')
return 1
