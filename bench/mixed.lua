-- wrk script of bench/mixed.py: mixed short/passage traffic, one text per request, per-class latency.
--
--   wrk -t C -c C -d SECONDS --timeout 60s -s bench/mixed.lua URL -- BODIES A B START END C
--
-- BODIES: a file of request bodies, one per line, each prefixed by its class and a space ("s {...}" for a
-- short/query text, "p {...}" for a passage); they are POSTed to /v1/embeddings as they are.
-- A/B: A passages in every B requests. Thread k's n-th request (n = 0, 1, ...) is a passage when
-- ((n + k) * A) % B < A (A = 1, B = 10: when (n + k) % 10 == 0), so the classes interleave evenly and
-- deterministically. Bodies are dealt out strided: thread k's j-th body of a class is that class's
-- (k + j * C)-th, so no two requests of a run carry the same body until a class's pool is used up; after
-- that bodies come round again and each such request is counted in "repeats".
-- START/END: the measurement window in CLOCK_MONOTONIC seconds (the clock of Python's time.monotonic()).
-- Only responses that complete inside it are counted; the time before START is the warm-up.
-- Needs one connection per thread (-t C -c C): request() and response() then strictly alternate in each
-- thread, so one "sent at" time per thread suffices. Latency: from request() (the request is built, then
-- written) to response() (fully parsed), via LuaJIT ffi clock_gettime(CLOCK_MONOTONIC).
-- done() prints ONE line "MIXED {json}" on stdout: per class the count of 200s, p50/p99 (ms), non-200
-- count, status counts and every latency (ms, for pooling rounds), plus wrk's socket errors.
-- (thread:get copies flat tables between Lua states; nested tables crash Debian's wrk 4.1, so none.)

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } mixed_timespec;
int clock_gettime(int clk_id, mixed_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("mixed_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

function init(args)
  -- args[0] is the URL; ours follow "--"
  local path, a, b = args[1], tonumber(args[2]), tonumber(args[3])
  win_start, win_end = tonumber(args[4]), tonumber(args[5])
  stride = tonumber(args[6])
  ratio_a, ratio_b = a, b
  local headers = { ["Content-Type"] = "application/json" }
  pools = { s = {}, p = {} }
  for line in io.lines(path) do
    local cls, body = line:sub(1, 1), line:sub(3)
    local pool = pools[cls]
    pool[#pool + 1] = wrk.format("POST", "/v1/embeddings", headers, body)
  end
  n, sent, cls = 0, 0, "s"
  next_text = { s = id, p = id }
  repeats = 0             -- requests whose body an earlier request of this run already carried
  lat_s, lat_p = {}, {}   -- ms, 200s completed inside the window
  codes = {}              -- "s200" -> count, "p503" -> count, ... (inside the window)
end

function request()
  cls = (((n + id) * ratio_a) % ratio_b < ratio_a) and "p" or "s"
  n = n + 1
  local pool, i = pools[cls], next_text[cls]
  next_text[cls] = i + stride
  if i >= #pool then repeats = repeats + 1 end
  sent = now()
  return pool[i % #pool + 1]
end

function response(status, headers, body)
  local t = now()
  if t < win_start or t > win_end then return end
  local key = cls .. status
  codes[key] = (codes[key] or 0) + 1
  if status == 200 then
    local lat = (cls == "p") and lat_p or lat_s
    lat[#lat + 1] = (t - sent) * 1000
  end
end

local function pct(sorted, q)  -- nearest rank
  if #sorted == 0 then return "null" end
  local i = math.max(1, math.ceil(q * #sorted))
  return string.format("%.3f", sorted[i])
end

function done(summary, latency, requests)
  local parts = {}
  for _, c in ipairs({ "s", "p" }) do
    local all, statuses, bad = {}, {}, 0
    for _, t in ipairs(threads) do
      for _, v in ipairs(t:get("lat_" .. c)) do all[#all + 1] = v end
      for key, count in pairs(t:get("codes")) do
        if key:sub(1, 1) == c then
          local code = key:sub(2)
          statuses[code] = (statuses[code] or 0) + count
          if code ~= "200" then bad = bad + count end
        end
      end
    end
    table.sort(all)
    local ms, st = {}, {}
    for i, v in ipairs(all) do ms[i] = string.format("%.3f", v) end
    for code, count in pairs(statuses) do st[#st + 1] = string.format('"%s":%d', code, count) end
    parts[#parts + 1] = string.format(
      '"%s":{"ok":%d,"p50_ms":%s,"p99_ms":%s,"non_200":%d,"statuses":{%s},"latencies_ms":[%s]}',
      c, #all, pct(all, 0.5), pct(all, 0.99), bad, table.concat(st, ","), table.concat(ms, ","))
  end
  local e, reused = summary.errors, 0
  for _, t in ipairs(threads) do reused = reused + t:get("repeats") end
  parts[#parts + 1] = string.format(
    '"wrk":{"requests":%d,"duration_s":%.3f,"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d,"repeats":%d}',
    summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.timeout, e.status, reused)
  io.write("MIXED {", table.concat(parts, ","), "}\n")
end
