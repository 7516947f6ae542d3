-- Auto-save: each thread is one person on one connection (-t50 -c50) with its own session
-- cookie, CSRF token and onboarding version. Every answer carries the version the next save
-- must send (a 409 carries the current one), so the thread never sends a stale version twice.

local mine = nil
local version = nil
local saves = 0

function init(args)
  -- setup() has given this thread its index by now
  mine = bench_threads[index]
  version = mine.version
end

function request()
  saves = saves + 1
  local body = string.format(
    '{"stage":"PERSONAL_INFO","data":{"full_name":"Bench %d %d","phone":"%s"},"version":%d}',
    index, saves, mine.phone, version)
  return wrk.format("PUT", mine.path, mine.headers, body)
end

function response(status, headers, body)
  check(status, headers)
  local latest = string.match(body, '"version"%s*:%s*(%d+)')
  if latest ~= nil then
    version = tonumber(latest)
  end
end

