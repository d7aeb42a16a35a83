-- Reserves an amount in each of several token buckets, all or nothing.
--
-- KEYS[i]: bucket i. ARGV[2i-1]: its capacity (per minute), ARGV[2i]: the amount to take.
-- A bucket is a hash {l = level, t = when the level was computed, in microseconds of the
-- Redis server's clock}; it refills continuously at capacity/60 per second up to capacity,
-- and a missing key is a full bucket (so a key can expire once its bucket is full again).
-- The level may go below zero (a settlement that used more than was reserved): later calls
-- wait the debt out.
--
-- The buckets are checked in order and the first one short of its amount refuses the whole
-- call, taking nothing from any bucket. Returns
--   {admitted (1|0), refused bucket (1-based, 0 when admitted), retry_ms (-1: never fits),
--    then for each bucket: remaining (floored, >= 0), ms until full}
-- where remaining is after the reservation when admitted and before it when refused.
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local n = #KEYS
local levels = {}
local refused = 0
local retry_ms = 0
for i = 1, n do
  local cap = tonumber(ARGV[2 * i - 1])
  local amount = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', KEYS[i], 'l', 't')
  local level = cap
  if state[1] then
    local elapsed = math.max(0, now - tonumber(state[2]))
    level = math.min(cap, tonumber(state[1]) + elapsed * cap / 60000000)
  end
  levels[i] = level
  if refused == 0 and level < amount then
    refused = i
    if amount > cap then
      retry_ms = -1
    else
      retry_ms = math.ceil((amount - level) * 60000 / cap)
    end
  end
end
if refused == 0 then
  for i = 1, n do
    local cap = tonumber(ARGV[2 * i - 1])
    local level = levels[i] - tonumber(ARGV[2 * i])
    levels[i] = level
    if level >= cap then
      redis.call('DEL', KEYS[i])
    else
      redis.call('HSET', KEYS[i], 'l', string.format('%.17g', level), 't', string.format('%.17g', now))
      redis.call('PEXPIRE', KEYS[i], math.ceil((cap - level) * 60000 / cap) + 1000)
    end
  end
end
local out = { refused == 0 and 1 or 0, refused, retry_ms }
for i = 1, n do
  local cap = tonumber(ARGV[2 * i - 1])
  out[#out + 1] = math.floor(math.max(levels[i], 0))
  out[#out + 1] = math.ceil((cap - levels[i]) * 60000 / cap)
end
return out
