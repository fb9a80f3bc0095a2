-- wrk script for bench/ingest.py: POST a hook body whose channel.id is new on every request,
-- so each request is a new conversation (nothing is deduplicated).
-- Arguments (after --): <path> <file with the body, CHANNEL_ID where the id goes> [offset]
-- offset: added to every channel.id, so several wrk processes post distinct conversations.

local thread_counter = 0

function setup(thread)
  thread:set("tid", thread_counter)
  thread_counter = thread_counter + 1
end

local prefix, suffix, path
local counter = 0
local offset = 0

function init(args)
  path = args[1]
  offset = tonumber(args[3] or "0")
  local file = assert(io.open(args[2], "rb"))
  local template = file:read("*a")
  file:close()
  local at = assert(template:find("CHANNEL_ID", 1, true))
  prefix = template:sub(1, at - 1)
  suffix = template:sub(at + #"CHANNEL_ID")
end

function request()
  counter = counter + 1
  local body = prefix .. tostring(offset + tid * 100000000 + counter) .. suffix
  return wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "mean_us": %.1f, "connect": %d, "read": %d, "write": %d, '
      .. '"status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status,
    e.timeout))
end
