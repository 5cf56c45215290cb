-- wrk script for bench/api.py: every request is a random line of a file, one request per line.
--
--   wrk -t2 -c32 -d15s --latency -s requests.lua http://127.0.0.1:PORT/graphql -- FILE POST
--   wrk -t2 -c32 -d15s --latency -s requests.lua http://127.0.0.1:PORT -- FILE GET
--
-- GET: each line is a path with its query string. POST: each line is a JSON body, sent to the URL's path.
-- Each wrk thread has its own Lua state and its own seed, so the threads draw different sequences.

local lines = {}
local method = "GET"
local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("seed", threads)
end

function init(args)
   local file = args[1]
   method = args[2] or "GET"
   for line in io.lines(file) do
      if #line > 0 then
         lines[#lines + 1] = line
      end
   end
   if #lines == 0 then
      error("no requests in " .. file)
   end
   math.randomseed(7919 * (seed or 1))
   if method == "POST" then
      wrk.method = "POST"
      wrk.headers["Content-Type"] = "application/json"
   end
end

function request()
   local line = lines[math.random(#lines)]
   if method == "POST" then
      return wrk.format(nil, nil, nil, line)
   end
   return wrk.format(nil, line)
end
