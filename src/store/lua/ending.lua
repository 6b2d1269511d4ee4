local function final(p, group, tenant, retention)
  local sid = redis.call('HGET', KEYS[1], 'sid')
  if sid then
    redis.call('XACK', KEYS[2], group, sid)
    redis.call('XDEL', KEYS[2], sid)
    redis.call('HDEL', KEYS[1], 'sid')
  end
  redis.call('PEXPIRE', KEYS[1], retention)
  local idem = redis.call('HGET', KEYS[1], 'idempotency_key')
  if idem and idem ~= '' then redis.call('PEXPIRE', p .. ':idem:' .. string.len(tenant) .. '.' .. tenant .. ':' .. idem, retention) end
end
local function fail_twice(p, group, tenant, now, retention)
  redis.call('HSET', KEYS[1], 'status', 'failed', 'finished_at', now, 'error',
    'the gateway stopped twice while this execution was running; it was not run again')
  final(p, group, tenant, retention)
end
