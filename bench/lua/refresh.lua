-- POST auth/refresh over thousands of distinct sessions. Each 200 hands back the
-- session's next refresh token, which goes to the back of this thread's queue, so
-- no token is ever sent twice (that would be reuse and end the session).
-- args: <refresh token file> <wrk threads> <path>
local queue, head, tail, path = {}, 1, 0, "/"

function init(args)
  queue = thread_share(args[1], tid or 0, tonumber(args[2]))
  tail = #queue
  path = args[3]
end

function request()
  local token = "exhausted"
  if head <= tail then
    token = queue[head]
    queue[head] = nil
    head = head + 1
  end
  return wrk.format("POST", path, bench_headers, '{"refresh":"' .. token .. '"}')
end

function response(status, headers, body)
  if status == 200 then
    local token = string.match(body, '"refresh"%s*:%s*"([^"]+)"')
    if token then
      tail = tail + 1
      queue[tail] = token
    end
  end
end
