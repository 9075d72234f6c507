-- wrk script: the `hot-item` request. Every request reserves one unit of SKU `hot` for a
-- random buyer (SKU from $SKU, default `hot`) (so per-buyer limits and rate limits do not interfere).
-- Usage: TOKEN=... wrk -s gateway/examples/wrk/hot_item.lua -c N -d 10s http://127.0.0.1:8080
local token = os.getenv("TOKEN") or "bench-storefront"
local sku = os.getenv("SKU") or "hot"
wrk.method = "POST"
wrk.path = "/v1/reservations"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  math.randomseed(os.time() + (tid or 0) * 7919)
end

request = function()
  local body = string.format('{"buyer":"b%d","lines":[{"sku":"%s","qty":1}]}', math.random(1, 1000000000), sku)
  return wrk.format(nil, nil, nil, body)
end

done = function(summary, latency, requests)
  io.write(string.format("p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
  io.write(string.format("non2xx_3xx=%d errors_connect=%d errors_read=%d errors_write=%d errors_timeout=%d\n",
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
