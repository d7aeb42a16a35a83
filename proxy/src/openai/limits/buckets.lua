-- Token buckets for Warden's shared limits. One script, two operations (ARGV[1]):
--
-- reserve: takes an amount from each of several buckets, all or nothing.
--   KEYS[i]: bucket i; ARGV[2i]: its capacity (per minute), ARGV[2i+1]: the amount to take.
--   The buckets are checked in order and the first one short of its amount refuses the whole
--   call, taking nothing from any bucket. Returns
--     {admitted (1|0), refused bucket (1-based, 0 when admitted), retry_ms (-1: never fits),
--      then for each bucket: remaining (floored, >= 0), ms until full}
--   where remaining is after the reservation when admitted and before it when refused.
--
-- adjust: settles reservations: adds ARGV[2] (negative: more was used than reserved) to each
--   bucket KEYS[i] of capacity ARGV[i + 2], never above its capacity. Returns the number of
--   buckets.
--
-- A bucket is a hash {l = level, t = when the level was computed, in microseconds of the Redis
-- server's clock}; it refills continuously at capacity/60 per second up to capacity, and a
-- missing key is a full bucket, so a key is deleted, or expires, once its bucket is full
-- again. The level may go below zero (a settlement that used more than was reserved): later
-- calls wait the debt out.
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])

local function level_of(key, cap)
  local state = redis.call('HMGET', key, 'l', 't')
  if not state[1] then
    return cap
  end
  local elapsed = math.max(0, now - tonumber(state[2]))
  return math.min(cap, tonumber(state[1]) + elapsed * cap / 60000000)
end

local function ms_until_full(cap, level)
  return math.ceil((cap - level) * 60000 / cap)
end

local function store(key, cap, level)
  if level >= cap then
    redis.call('DEL', key)
  else
    redis.call('HSET', key, 'l', string.format('%.17g', level), 't', string.format('%.17g', now))
    redis.call('PEXPIRE', key, ms_until_full(cap, level) + 1000)
  end
end

if ARGV[1] == 'adjust' then
  local delta = tonumber(ARGV[2])
  for i = 1, #KEYS do
    local cap = tonumber(ARGV[i + 2])
    store(KEYS[i], cap, math.min(cap, level_of(KEYS[i], cap) + delta))
  end
  return #KEYS
end

local n = #KEYS
local levels = {}
local refused = 0
local retry_ms = 0
for i = 1, n do
  local cap = tonumber(ARGV[2 * i])
  local amount = tonumber(ARGV[2 * i + 1])
  local level = level_of(KEYS[i], cap)
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
    local cap = tonumber(ARGV[2 * i])
    levels[i] = levels[i] - tonumber(ARGV[2 * i + 1])
    store(KEYS[i], cap, levels[i])
  end
end
local out = { refused == 0 and 1 or 0, refused, retry_ms }
for i = 1, n do
  local cap = tonumber(ARGV[2 * i])
  out[#out + 1] = math.floor(math.max(levels[i], 0))
  out[#out + 1] = ms_until_full(cap, levels[i])
end
return out
