-- GET one path, rotating over the access tokens in args[1] (one per line).
-- args: <token file> <wrk threads> <path>
local tokens, path, n = {}, "/", 0

function init(args)
  tokens = thread_share(args[1], tid or 0, tonumber(args[2]))
  path = args[3]
end

function request()
  n = n % #tokens + 1
  local headers = {}
  for k, v in pairs(bench_headers) do headers[k] = v end
  headers["Authorization"] = "Bearer " .. tokens[n]
  return wrk.format("GET", path, headers)
end
