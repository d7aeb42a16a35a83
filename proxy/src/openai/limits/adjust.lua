-- Settles reservations: adds ARGV[1] (negative: more was used than reserved) to each bucket
-- KEYS[i] of capacity ARGV[i + 1], after refilling it, never above its capacity. Buckets are
-- the hashes reserve.lua keeps; a missing key is a full bucket. Returns the number of buckets.
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local delta = tonumber(ARGV[1])
for i = 1, #KEYS do
  local cap = tonumber(ARGV[i + 1])
  local state = redis.call('HMGET', KEYS[i], 'l', 't')
  local level = cap
  if state[1] then
    local elapsed = math.max(0, now - tonumber(state[2]))
    level = math.min(cap, tonumber(state[1]) + elapsed * cap / 60000000)
  end
  level = math.min(cap, level + delta)
  if level >= cap then
    redis.call('DEL', KEYS[i])
  else
    redis.call('HSET', KEYS[i], 'l', string.format('%.17g', level), 't', string.format('%.17g', now))
    redis.call('PEXPIRE', KEYS[i], math.ceil((cap - level) * 60000 / cap) + 1000)
  end
end
return #KEYS
