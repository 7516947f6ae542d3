-- The same request over and over, per thread: bench_threads[index] holds its method, path,
-- headers (the session cookie ...) and body (e.g. a log-in form with its CSRF token).

local prepared = nil

function request()
  if prepared == nil then
    local mine = bench_threads[index]
    prepared = wrk.format(mine.method, mine.path, mine.headers, mine.body)
  end
  return prepared
end

function response(status, headers, body)
  check(status, headers)
end
