-- Shared by every scenario: the headers a proxy in front of production would add,
-- and one machine-readable result line (latencies in microseconds).
bench_headers = {
  ["Host"] = "127.0.0.1",
  ["X-Forwarded-Proto"] = "https",
  ["Content-Type"] = "application/json",
  ["Accept"] = "application/json",
}

local function read_lines(path)
  local lines = {}
  local f = assert(io.open(path, "r"))
  for line in f:lines() do
    if #line > 0 then lines[#lines + 1] = line end
  end
  f:close()
  return lines
end

-- The lines of `path` that belong to this wrk thread (thread `tid` of `nthreads`).
function thread_share(path, tid, nthreads)
  local all, mine = read_lines(path), {}
  for i, line in ipairs(all) do
    if (i - 1) % nthreads == tid then mine[#mine + 1] = line end
  end
  if #mine == 0 then return all end
  return mine
end

local thread_count = 0
function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%.0f duration_us=%.0f bytes=%.0f connect=%.0f read=%.0f write=%.0f " ..
    "status=%.0f timeout=%.0f p50=%.0f p90=%.0f p95=%.0f p99=%.0f max=%.0f mean=%.1f\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
end
