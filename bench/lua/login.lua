-- POST a login, rotating over the users in args[1] ("email password" per line).
-- args: <user file> <wrk threads> <path> [<name of the login field>, default "email"]
local bodies, path, n = {}, "/", 0

function init(args)
  local field = args[4] or "email"
  for _, line in ipairs(thread_share(args[1], tid or 0, tonumber(args[2]))) do
    local email, password = string.match(line, "^(%S+)%s+(%S+)$")
    bodies[#bodies + 1] = '{"' .. field .. '":"' .. email .. '","password":"' .. password .. '"}'
  end
  path = args[3]
end

function request()
  n = n % #bodies + 1
  return wrk.format("POST", path, bench_headers, bodies[n])
end
