-- wrk script: GET /products/<id> with ids drawn uniformly, or Zipf-like when
-- the environment variable ZIPF is set (hot keys, s ~ 1.1). THINK_MS=N makes
-- each connection wait N ms after a response before its next request (closed
-- loop with think time). At the end it prints one line of latency percentiles
-- in microseconds, which wrk's own summary rounds and stops at 99%.
local n = tonumber(os.getenv("KEYS") or "100000")
local zipf = os.getenv("ZIPF") ~= nil
local think = tonumber(os.getenv("THINK_MS") or "0")
math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0))
local function pick()
  if not zipf then return math.random(1, n) end
  -- inverse-power sampling: heavy head, long tail
  local u = math.random()
  return math.floor(n ^ (u ^ 3)) -- crude but heavily skewed
end
request = function()
  return wrk.format("GET", "/products/" .. pick())
end
if think > 0 then
  delay = function() return think end
end
done = function(summary, latency, requests)
  io.write(string.format("PERCENTILES_US p50=%d p90=%d p99=%d p999=%d max=%d\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
