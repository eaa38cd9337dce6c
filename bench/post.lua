-- wrk script used by bench/run: POST a JSON chat body, print a machine-readable summary.
--   BENCH_BODY     request body (JSON)
--   BENCH_HEADERS  extra request headers, one "Name: value" per line
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
wrk.headers["Content-Type"] = "application/json"
for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
  local name, value = line:match("^%s*([^:]+):%s*(.-)%s*$")
  if name then wrk.headers[name] = value end
end

-- Called once, in the main thread, after the run. Latencies are in microseconds.
-- errors.status counts responses with status >= 400 (wrk's "Non-2xx or 3xx").
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d sock_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
