-- wrk script of ccgate's benchmark (bench/run.py sets the environment).
--
--   BENCH_BODY    file holding the JSON body to POST
--   BENCH_KEY     the API key, sent as x-api-key
--   BENCH_EVENTS  if set: count each response's server-sent events, and the responses that ran
--                 to their end (`event: message_stop` or `data: [DONE]`)
--
-- At the end it prints one line, `BENCH_JSON {...}`, with the counts and latency percentiles.

local function read_file(path)
  local file = assert(io.open(path, "rb"))
  local text = file:read("*a")
  file:close()
  return text
end

wrk.method = "POST"
wrk.body = read_file(os.getenv("BENCH_BODY"))
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["x-api-key"] = os.getenv("BENCH_KEY")

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  events = 0
  complete = 0
end

if os.getenv("BENCH_EVENTS") then
  function response(status, headers, body)
    if status == 200 then
      events = events + select(2, body:gsub("\n\n", ""))
      if body:find("event: message_stop", 1, true) or body:find("data: [DONE]", 1, true) then
        complete = complete + 1
      end
    end
  end
end

function done(summary, latency, requests)
  local events_seen, complete_seen = 0, 0
  for _, thread in ipairs(threads) do
    events_seen = events_seen + thread:get("events")
    complete_seen = complete_seen + thread:get("complete")
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "events": %d, "complete": %d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99), events_seen, complete_seen))
end
