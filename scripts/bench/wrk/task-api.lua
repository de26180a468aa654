-- wrk script for the Task API benchmark. BENCH_DATA names a Lua file that
-- defines `users = { { token = "...", ids = { "...", ... } }, ... }`;
-- BENCH_OP picks the operation: list, get, create, toggle, patch,
-- delete-recreate, mix (70% list/get, 30% create/toggle/patch) or reads
-- (half list, half get).
local op = os.getenv("BENCH_OP")
dofile(os.getenv("BENCH_DATA"))

local json_headers = { ["Content-Type"] = "application/json" }
local created = {}      -- tasks this thread created and may delete

local function pick_user()
  local index = math.random(#users)
  users[index].index = index
  return users[index]
end

local function with_auth(user, extra)
  local headers = { ["Authorization"] = "Bearer " .. user.token }
  for k, v in pairs(extra or {}) do headers[k] = v end
  return headers
end

local function list(user) return wrk.format("GET", "/api/tasks", with_auth(user)) end
local function get(user) return wrk.format("GET", "/api/tasks/" .. user.ids[math.random(#user.ids)], with_auth(user)) end
-- The title names the user, so a 201 can be matched to its owner whatever
-- order responses arrive in.
local function create(user)
  return wrk.format("POST", "/api/tasks", with_auth(user, json_headers),
    '{"title":"benchmark task ' .. user.index .. '"}')
end
local function toggle(user)
  return wrk.format("PATCH", "/api/tasks/" .. user.ids[math.random(#user.ids)] .. "/complete", with_auth(user))
end
local function patch(user)
  return wrk.format("PATCH", "/api/tasks/" .. user.ids[math.random(#user.ids)], with_auth(user, json_headers),
    '{"title":"patched title"}')
end

function setup(thread)
  thread:set("id", math.random(1000000))
end

function init(args)
  math.randomseed(os.time() + (id or 0))
end

function request()
  local user = pick_user()
  if op == "list" then return list(user)
  elseif op == "get" then return get(user)
  elseif op == "create" then return create(user)
  elseif op == "toggle" then return toggle(user)
  elseif op == "patch" then return patch(user)
  elseif op == "delete-recreate" then
    local victim = table.remove(created, 1)
    if victim then
      return wrk.format("DELETE", "/api/tasks/" .. victim.id, with_auth(users[victim.user]))
    end
    return create(user)
  elseif op == "reads" then
    if math.random(2) == 1 then return list(user) else return get(user) end
  elseif op == "mix" then
    local r = math.random(100)
    if r <= 40 then return list(user)
    elseif r <= 70 then return get(user)
    elseif r <= 80 then return create(user)
    elseif r <= 90 then return toggle(user)
    else return patch(user) end
  end
  error("unknown BENCH_OP " .. tostring(op))
end

function response(status, headers, body)
  if op ~= "delete-recreate" or status ~= 201 then return end
  local new_id = string.match(body, '"id":"([0-9a-f%-]+)"')
  local owner = tonumber(string.match(body, '"title":"benchmark task (%d+)"'))
  if new_id and owner then table.insert(created, { id = new_id, user = owner }) end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
