-- wrk: POST /v1/check to the token-service directly, as the filter does, for a hash drawn at
-- random from BENCH_HASHES_FILE per request, so a large store is read across its whole index
-- rather than one hot row. The check secret comes from BENCH_CHECK_SECRET.
local hashes = {}
for line in io.lines(os.getenv("BENCH_HASHES_FILE")) do
  hashes[#hashes + 1] = line
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-ptk-check-secret"] = os.getenv("BENCH_CHECK_SECRET")

request = function()
  local hash = hashes[math.random(#hashes)]
  return wrk.format(nil, "/v1/check", nil, '{"hash":"' .. hash .. '","provider":"openai"}')
end
