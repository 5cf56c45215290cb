-- wrk script for the soak of bench/faults.py: cycles through a mix of REST GETs and GraphQL POSTs read
-- from a tab-separated file (method, path, JSON body or empty), counts every response status and the
-- 200 responses whose body carries GraphQL "errors", and prints one FAULTS_JSON line when done.
--
--   wrk -t2 -c16 -d300s --timeout 10s -s bench/faults_assets/soak.lua http://127.0.0.1:PORT -- requests.tsv

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  table.insert(threads, thread)
end

counts = {}
gql_errors = 0
local reqs = {}
local i = 0

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    local method, path, body = line:match("^([^\t]+)\t([^\t]+)\t?(.*)$")
    if method then
      local headers = {}
      if body ~= nil and body ~= "" then
        headers["Content-Type"] = "application/json"
      else
        body = nil
      end
      table.insert(reqs, wrk.format(method, path, headers, body))
    end
  end
  f:close()
  -- threads start at different points of the mix
  i = ((id or 1) * 7919) % #reqs
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end

function response(status, headers, body)
  local key = tostring(status)
  counts[key] = (counts[key] or 0) + 1
  if status == 200 and body ~= nil and body:find('"errors"', 1, true) then
    gql_errors = gql_errors + 1
  end
end

function done(summary, latency, requests)
  local total, gerr = {}, 0
  for _, thread in ipairs(threads) do
    local c = thread:get("counts") or {}
    for k, v in pairs(c) do
      total[k] = (total[k] or 0) + v
    end
    gerr = gerr + (thread:get("gql_errors") or 0)
  end
  local parts = {}
  for k, v in pairs(total) do
    table.insert(parts, string.format('"%s":%d', k, v))
  end
  local e = summary.errors
  io.write(string.format(
    'FAULTS_JSON {"statuses":{%s},"graphql_errors":%d,"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"non_2xx_3xx":%d,' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    table.concat(parts, ","), gerr, summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
