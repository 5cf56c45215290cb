-- wrk script for a mix of requests: every request is a random line of a file, `METHOD PATH [JSON BODY]`.
--
--   wrk -t2 -c32 -d15s --latency -s mixed.lua http://127.0.0.1:PORT -- FILE
--
-- `GET /v1/papers?limit=20`, `POST /graphql {"query": "..."}`: a POST's body is sent as application/json,
-- with the -H headers as every request.
-- Each wrk thread has its own Lua state and its own seed, so the threads draw different sequences.

local requests = {}
local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("seed", threads)
end

function init(args)
   for line in io.lines(args[1]) do
      local method, path, body = line:match("^(%u+) (%S+) ?(.*)$")
      if method then
         requests[#requests + 1] = {method, path, body}
      end
   end
   if #requests == 0 then
      error("no requests in " .. args[1])
   end
   math.randomseed(7919 * (seed or 1))
end

function request()
   local r = requests[math.random(#requests)]
   if r[1] == "POST" then
      -- wrk.format takes the headers given instead of wrk.headers (the -H flags): pass both.
      local headers = {["Content-Type"] = "application/json"}
      for name, value in pairs(wrk.headers) do
         headers[name] = value
      end
      return wrk.format("POST", r[2], headers, r[3])
   end
   return wrk.format("GET", r[2])
end
