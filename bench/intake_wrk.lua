-- wrk script of bench/intake_wrk.py: POST Alertmanager webhooks (version 4, one firing alert each).
-- The body template comes from the environment (BENCH_BODY, with @@N@@ where the request's number goes
-- and BENCH_TOKEN); with BENCH_SCENARIO=distinct each request gets its own number (a new fingerprint
-- and alert name: a new incident), with storm every request is the same alert (it joins one incident).
-- At the end one line "WRK-RESULT {json}" with the status counts and the latency percentiles (us).

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  template = os.getenv("BENCH_BODY")
  distinct = os.getenv("BENCH_SCENARIO") == "distinct"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
  n = 0
  accepted = 0
  refused = 0
  if not distinct then
    wrk.body = template:gsub("@@N@@", "storm")
  end
end

function request()
  if distinct then
    n = n + 1
    local body = template:gsub("@@N@@", tid .. "-" .. n)
    return wrk.format(nil, nil, nil, body)
  end
  return wrk.format()
end

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
  else
    refused = refused + 1
  end
end

function done(summary, latency, requests)
  local a, r = 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted")
    r = r + t:get("refused")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK-RESULT {"requests": %d, "duration_us": %d, "accepted": %d, "refused": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, a, r, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
