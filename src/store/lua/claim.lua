local p, sid, now, group = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local st = redis.call('HGET', KEYS[1], 'status')
local function drop() redis.call('XACK', KEYS[2], group, sid); redis.call('XDEL', KEYS[2], sid) end
if st ~= 'queued' and st ~= 'running' then drop(); return 'gone' end
-- An entry the job no longer points at (it was re-queued under a new one) is stale.
if redis.call('HGET', KEYS[1], 'sid') ~= sid then drop(); return 'gone' end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
local tenant = redis.call('HGET', KEYS[1], 'tenant')
local id = redis.call('HGET', KEYS[1], 'id')
local running = p .. ':running:' .. tenant
if st == 'queued' then
  -- The tenant's cap: members no longer running (ended, lost) are dropped first.
  for _, other in ipairs(redis.call('ZRANGE', running, 0, -1)) do
    if redis.call('HGET', p .. ':job:' .. other, 'status') ~= 'running' then redis.call('ZREM', running, other) end
  end
  if redis.call('ZCARD', running) >= tonumber(ARGV[7]) then
    -- Its turn later: to the end of the stream, still queued.
    drop()
    local new = redis.call('XADD', KEYS[2], '*', 'id', id)
    redis.call('HSET', KEYS[1], 'sid', new)
    return 'later'
  end
  redis.call('DECR', p .. ':queued:' .. tenant)
  redis.call('DECR', p .. ':queued')
elseif attempts >= 2 then
  redis.call('ZREM', running, id)
  fail_twice(p, group, tenant, now, ARGV[5])
  return 'failed'
end
redis.call('ZADD', running, now, id)
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', now, 'attempts', attempts + 1, 'sid', sid)
return 'run'
