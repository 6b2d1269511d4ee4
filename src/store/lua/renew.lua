local p, queue, group, me = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local lost = {}
for i = 5, #ARGV, 2 do
  local id, sid = ARGV[i], ARGV[i + 1]
  local job = p .. ':job:' .. id
  local ok = redis.call('HGET', job, 'status') == 'running' and redis.call('HGET', job, 'sid') == sid
  if ok then
    local pending = redis.call('XPENDING', queue, group, sid, sid, 1)
    ok = #pending > 0 and pending[1][2] == me
  end
  if ok then
    redis.call('XCLAIM', queue, group, me, 0, sid, 'JUSTID')
  else
    table.insert(lost, id)
  end
end
return lost
