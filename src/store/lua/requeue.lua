local p, sid, now, group = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
-- Only an entry this consumer still owns, and the one the job points at: another replica
-- may have taken it over (XAUTOCLAIM) while this one was down.
local pending = redis.call('XPENDING', KEYS[2], group, sid, sid, 1)
if #pending == 0 or pending[1][2] ~= ARGV[6] then return 'gone' end
redis.call('XACK', KEYS[2], group, sid)
redis.call('XDEL', KEYS[2], sid)
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'queued' and st ~= 'running' then return 'gone' end
if redis.call('HGET', KEYS[1], 'sid') ~= sid then return 'gone' end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
local tenant = redis.call('HGET', KEYS[1], 'tenant')
if st == 'running' and attempts >= 2 then
  fail_twice(p, group, tenant, now, ARGV[5])
  return 'failed'
end
if st == 'running' then
  redis.call('INCR', p .. ':queued:' .. tenant)
  redis.call('INCR', p .. ':queued')
end
local id = redis.call('HGET', KEYS[1], 'id')
redis.call('ZREM', p .. ':running:' .. tenant, id)
local new = redis.call('XADD', KEYS[2], '*', 'id', id)
redis.call('HSET', KEYS[1], 'status', 'queued', 'sid', new)
redis.call('HDEL', KEYS[1], 'started_at')
return 'requeued'
