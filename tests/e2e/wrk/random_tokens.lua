-- wrk script: every request carries a proxy token nobody minted, never the same twice
-- (a per-thread random prefix plus a counter). Used by the bounded-memory and throttle tests.
local counter = 0
local prefix

function setup(thread)
  thread:set("seed", math.random(1, 2147483647))
end

function init(args)
  math.randomseed(seed or os.time())
  prefix = string.format("ptk_flood_%08x%08x_", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end

function request()
  counter = counter + 1
  return wrk.format("GET", "/v1/models", {["authorization"] = "Bearer " .. prefix .. counter})
end
