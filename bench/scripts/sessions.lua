-- Shared by the entries whose wrk threads each play one person (bench.logged_in).
--
-- The lines generated before this file define
--   bench_threads  one table per wrk thread (cookie, CSRF token, request, version ...)
--   bench_expect   {status = N, location = "/path"}; location may be absent
-- setup() gives each thread its index into bench_threads; the entry's script, appended after
-- this one, builds its requests from bench_threads[index] and calls check() on every response.
-- done() prints "bench-checked <responses>" and one "bench-unexpected <kind> <count>" line per
-- kind of wrong answer (a status, or a redirect elsewhere), which bench.http reads in place of
-- wrk's own count (wrk takes a 302 to the login page for a success).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("index", #threads)
end

checked = 0
unexpected = {}

function check(status, headers)
  checked = checked + 1
  local kind = nil
  if status ~= bench_expect.status then
    kind = "status_" .. status
  elseif bench_expect.location ~= nil then
    local location = headers["Location"] or headers["location"] or ""
    if string.sub(location, -#bench_expect.location) ~= bench_expect.location then
      kind = "location"
    end
  end
  if kind ~= nil then
    unexpected[kind] = (unexpected[kind] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total, kinds = 0, {}
  for _, thread in ipairs(threads) do
    total = total + thread:get("checked")
    for kind, count in pairs(thread:get("unexpected")) do
      kinds[kind] = (kinds[kind] or 0) + count
    end
  end
  io.write(string.format("bench-checked %d\n", total))
  for kind, count in pairs(kinds) do
    io.write(string.format("bench-unexpected %s %d\n", kind, count))
  end
end
