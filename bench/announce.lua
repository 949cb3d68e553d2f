-- bench/announce.lua: the announce workload of `make bench`, as a wrk script.
--
--   wrk -t1 -c64 -d20s --timeout 5s -s bench/announce.lua http://127.0.0.1:PORT \
--       -- dataset=FILE [name=value ...]
--
-- Options (name=value after "--"):
--   dataset=FILE   sidecar written by bench/dataset.py (required)
--   peers=N        simulated peers (default 200000)
--   seed=N         population seed: same seed, same peers (default 1)
--   zipf=S         torrent popularity exponent, 0 = uniform (default 0.8)
--   leechers=F     share of peers that are leechers (default 0.70)
--   stopped=F      share of announces with event=stopped (default 0.01)
--   completed=F    share with event=completed, leechers only (default 0.005)
--   started=F      share with event=started (default 0.02)
--   numwant=N      numwant parameter (default 50)
--   mode=run       random peers, events as above (the measured run)
--   mode=populate  peers offset, offset+1, ... peers-1 once each with
--                  event=started, then stop; use one wrk thread (-t1)
--   offset=K       first peer of mode=populate (default 0)
--   rate=R         pace the requests of this thread at R per second, spread over
--                  its connections (default 0: as fast as answers come back);
--                  with -t1 this is the request rate of the run
--
-- Peer k (0 <= k < peers) is derived from k and the seed only: its user, its
-- torrent (power-law popularity), its client and 20-byte peer_id, port, key,
-- torrent size and transfer rates. uploaded and downloaded grow with the time
-- since the dataset was written, so each re-announce reports new transfer.
--
-- done() prints one line starting with "BENCH " of name=value pairs (requests,
-- rps, p50_ms, p99_ms, p999_ms, ok, failures, non200, ...), which bench/run.sh
-- reads. failures = HTTP 200 answers carrying a bencoded "failure reason".

local bit = require("bit")
local band, bxor, rshift, lshift, tobit = bit.band, bit.bxor, bit.rshift, bit.lshift, bit.tobit

local TWO32 = 4294967296
local MIB = 1048576

local opt = {
   dataset = "", peers = 200000, seed = 1, zipf = 0.8, leechers = 0.70,
   stopped = 0.01, completed = 0.005, started = 0.02, numwant = 50,
   mode = "run", offset = 0, rate = 0,
}
local NUMERIC = { peers = true, seed = true, zipf = true, leechers = true, stopped = true,
                  completed = true, started = true, numwant = true, offset = true,
                  rate = true }

-- Per-thread counters: globals, so that done() can read them with thread:get().
sent, ok, failures, non200, body_bytes = 0, 0, 0, 0, 0
ev_started, ev_stopped, ev_completed = 0, 0, 0
answered = 0            -- mode=populate: announces answered
reasons = {}            -- failure reason -> count (a few distinct ones)
statuses = {}           -- non-200 status -> count
populate_done = false

-- ------------------------------------------------------------- the dataset --
local clients, passkeys, hashes = {}, {}, {}
local created = 0

local function read_dataset(path)
   local f, err = io.open(path, "r")
   if not f then error("announce.lua: cannot read dataset " .. tostring(path) .. ": " .. tostring(err)) end
   if f:read("*l") ~= "chihaya-bench-dataset 1" then
      error("announce.lua: " .. path .. " is not a bench/dataset.py sidecar")
   end
   created = tonumber((f:read("*l") or ""):match("created=(%d+)")) or os.time()
   local list = nil
   for line in f:lines() do
      if line:byte(1) == 91 then -- "["
         list = ({ ["[clients]"] = clients, ["[users]"] = passkeys, ["[torrents]"] = hashes })[line]
      elseif list then
         list[#list + 1] = line
      end
   end
   f:close()
   if #clients == 0 or #passkeys == 0 or #hashes == 0 then
      error("announce.lua: " .. path .. " lacks clients, users or torrents")
   end
end

-- ----------------------------------------------------------------- hashing --
-- Exact 32-bit multiply (LuaJIT numbers are doubles: split into 16-bit halves).
local function mul32(a, b)
   local al, ah = band(a, 0xffff), rshift(a, 16)
   local bl, bh = band(b, 0xffff), rshift(b, 16)
   local cross = band(ah * bl + al * bh, 0xffff)
   return tobit(lshift(cross, 16) + al * bl)
end

-- A well-mixed unsigned 32-bit value for (k, lane) under the seed
-- (multiply-xorshift finalizer of MurmurHash3).
local seed_mix = 0
local function h32(k, lane)
   local x = bxor(mul32(k, 0x9E3779B1), mul32(lane + 1, 0x85EBCA77), seed_mix)
   x = bxor(x, rshift(x, 16)); x = mul32(x, 0x85EBCA6B)
   x = bxor(x, rshift(x, 13)); x = mul32(x, 0xC2B2AE35)
   x = bxor(x, rshift(x, 16))
   return x % TWO32
end

-- ---------------------------------------------------------------- the peers --
-- Torrent rank for u in [0, 1): inverse CDF of the density x^-s on [1, M+1].
local rank_of
local function setup_popularity(m, s)
   if s <= 0 then
      rank_of = function(u) return 1 + math.floor(u * m) end
   elseif math.abs(s - 1) < 1e-9 then
      rank_of = function(u) return math.min(m, math.floor((m + 1) ^ u)) end
   else
      local e = 1 - s
      local span = (m + 1) ^ e - 1
      rank_of = function(u) return math.min(m, math.floor((1 + u * span) ^ (1 / e))) end
   end
end

local ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
local function alnum(x, n)
   local out = {}
   for i = 1, n do
      local d = x % 62
      out[i] = ALNUM:sub(d + 1, d + 1)
      x = (x - d) / 62
   end
   return table.concat(out)
end

-- %XX-escape every byte but the RFC 3986 unreserved ones, as clients do.
local function escape(s)
   return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function unhex(h)
   return (h:gsub("%x%x", function(xx) return string.char(tonumber(xx, 16)) end))
end

local cache = {}
local function peer(k)
   local p = cache[k]
   if p then return p end
   local n_torrents = #hashes
   local uid = 1 + h32(k, 1) % #passkeys
   local rank = rank_of(h32(k, 2) / TWO32)
   -- Ranks are scattered over torrent IDs, so the big swarms are not IDs 1, 2, 3.
   local tid = 1 + h32(rank, 3) % n_torrents
   local client = clients[1 + h32(k, 4) % #clients]
   local peer_id = client .. alnum(h32(k, 5), 6) .. alnum(h32(k, 6), 6)
   p = {
      head = "/" .. passkeys[uid] .. "/announce?info_hash=" .. escape(unhex(hashes[tid])) ..
         "&peer_id=" .. escape(peer_id) .. "&port=" .. (1024 + h32(k, 7) % 64000),
      key = string.format("%08X", h32(k, 8)),
      leecher = h32(k, 9) / TWO32 < opt.leechers,
      size = (64 + h32(k, 10) % 16384) * MIB,      -- 64 MiB .. 16 GiB
      up_rate = h32(k, 11) % 262144,               -- bytes/s, < 256 KiB/s
      down_rate = 32768 + h32(k, 12) % 4194304,    -- bytes/s, 32 KiB/s .. 4 MiB/s
   }
   cache[k] = p
   return p
end

-- Per-thread state of the model: peers that sent stopped (their next announce
-- is started) and leechers that sent completed (downloaded frozen, now seeders).
local stopped_peers, finished = {}, {}

-- Query string of peer k now, event or nil; marks completed leechers.
local function announce(k, event)
   local p = peer(k)
   local age = os.time() - created
   if age < 1 then age = 1 end
   local uploaded = p.up_rate * age
   local downloaded, left
   if finished[k] then
      downloaded, left = finished[k], 0
   elseif p.leecher then
      downloaded = p.down_rate * age
      left = p.size - downloaded % p.size
      if event == "completed" then
         finished[k] = downloaded
         left = 0
      end
   else
      downloaded, left = p.size, 0
   end
   return string.format(
      "%s&uploaded=%.0f&downloaded=%.0f&left=%.0f&corrupt=0&key=%s%s&numwant=%d&compact=1&no_peer_id=1",
      p.head, uploaded, downloaded, left, p.key, event and ("&event=" .. event) or "", opt.numwant)
end

local function count_event(event)
   if event == "started" then ev_started = ev_started + 1
   elseif event == "stopped" then ev_stopped = ev_stopped + 1
   elseif event == "completed" then ev_completed = ev_completed + 1 end
end

-- ------------------------------------------------------------- wrk hooks --
local threads = {}

function setup(thread)
   threads[#threads + 1] = thread
   thread:set("thread_no", #threads)
end

local dry_run = false     -- the next request() is wrk's check of the request, not sent
local next_k = 0          -- mode=populate: next peer to announce

function init(args)
   for _, a in ipairs(args) do
      local name, value = a:match("^([%w_]+)=(.*)$")
      if not name or opt[name] == nil then error("announce.lua: unknown argument " .. a) end
      opt[name] = NUMERIC[name] and tonumber(value) or value
      if opt[name] == nil then error("announce.lua: not a number: " .. a) end
   end
   if opt.mode ~= "run" and opt.mode ~= "populate" then error("announce.lua: mode must be run or populate") end
   read_dataset(opt.dataset)
   seed_mix = mul32(opt.seed + 0x165667B1, 0x27D4EB2F)
   setup_popularity(#hashes, opt.zipf)
   -- wrk builds one request in thread 1 before starting, only to check it.
   dry_run = (thread_no == 1)
   next_k = opt.offset
   mode = opt.mode
   math.randomseed(os.time() + 7919 * (thread_no or 1))
   if opt.rate > 0 then
      -- wrk looks for a global delay() after init(): only a paced run has one.
      delay = paced_delay
   end
end

-- Pacing: request n of this thread is due at start + n / rate. delay() is asked
-- before each request and answers in whole milliseconds, so a request may leave
-- up to 1 ms early; the schedule is counted in requests, so the rate over the
-- run is exact whenever the server keeps up.
local paced_start, paced_n = nil, 0
local now_s
do
   local ok_ffi, ffi = pcall(require, "ffi")
   if ok_ffi then
      pcall(ffi.cdef, "struct bench_timespec { long tv_sec; long tv_nsec; };" ..
                      "int clock_gettime(int clk, struct bench_timespec *tp);")
      local ts = ffi.new("struct bench_timespec")
      now_s = function()
         ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
         return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
      end
   end
end

function paced_delay()
   if not now_s then error("announce.lua: rate= needs LuaJIT's ffi") end
   local now = now_s()
   paced_start = paced_start or now
   local due = paced_start + paced_n / opt.rate
   paced_n = paced_n + 1
   if due <= now then return 0 end
   return math.floor((due - now) * 1000)
end

local ALIVE = nil

function request()
   if dry_run then
      dry_run = false
      return wrk.format("GET", announce(0, nil))
   end
   if opt.mode == "populate" then
      if next_k >= opt.peers then
         -- Everything is handed out; connections still asking get a no-op.
         ALIVE = ALIVE or wrk.format("GET", "/alive")
         return ALIVE
      end
      local k = next_k
      next_k = next_k + 1
      sent = sent + 1
      ev_started = ev_started + 1
      return wrk.format("GET", announce(k, "started"))
   end

   local k = math.random(0, opt.peers - 1)
   local event = nil
   if stopped_peers[k] then
      event = "started"
      stopped_peers[k] = nil
   else
      local r = math.random()
      if r < opt.stopped then
         event = "stopped"
         stopped_peers[k] = true
      elseif r < opt.stopped + opt.completed then
         if peer(k).leecher and not finished[k] then event = "completed" end
      elseif r < opt.stopped + opt.completed + opt.started then
         event = "started"
      end
   end
   count_event(event)
   sent = sent + 1
   return wrk.format("GET", announce(k, event))
end

local function bump(t, key)
   if t[key] then t[key] = t[key] + 1
   else
      local n = 0
      for _ in pairs(t) do n = n + 1 end
      if n < 10 then t[key] = 1 end
   end
end

-- Wakes wrk's main thread, which otherwise sleeps for the whole -d duration.
local function end_wrk()
   wrk.thread:stop()
   local ok_ffi, ffi = pcall(require, "ffi")
   if ok_ffi then
      pcall(ffi.cdef, "int getpid(void); int kill(int pid, int sig);")
      pcall(function() ffi.C.kill(ffi.C.getpid(), 2) end) -- SIGINT: wrk's "stop now"
   end
end

function response(status, headers, body)
   if opt.mode == "populate" then
      if status == 200 and body:byte(1) == 123 then return end -- "{": an /alive answer
      answered = answered + 1
   end
   if status ~= 200 then
      non200 = non200 + 1
      bump(statuses, tostring(status))
   elseif body:find("failure reason", 1, true) then
      failures = failures + 1
      local len, at = body:match("14:failure reason(%d+):()")
      bump(reasons, len and body:sub(at, at + tonumber(len) - 1):gsub("%(.*", "") or body:sub(1, 60))
   else
      ok = ok + 1
      body_bytes = body_bytes + #body
   end
   if opt.mode == "populate" and not populate_done and next_k >= opt.peers and answered >= sent then
      populate_done = true
      end_wrk()
   end
end

function done(summary, latency, requests)
   local total = { sent = 0, ok = 0, failures = 0, non200 = 0, body_bytes = 0, answered = 0,
                   ev_started = 0, ev_stopped = 0, ev_completed = 0 }
   local why, codes = {}, {}
   local run_mode = "run"
   for _, t in ipairs(threads) do
      for name in pairs(total) do total[name] = total[name] + (t:get(name) or 0) end
      for r, c in pairs(t:get("reasons") or {}) do why[r] = (why[r] or 0) + c end
      for s, c in pairs(t:get("statuses") or {}) do codes[s] = (codes[s] or 0) + c end
      run_mode = t:get("mode") or run_mode
   end
   local seconds = summary.duration / 1e6
   local e = summary.errors
   local function ms(p) return latency:percentile(p) / 1000 end
   for r, c in pairs(why) do io.write(string.format("failure reason x%d: %s\n", c, r)) end
   for s, c in pairs(codes) do io.write(string.format("HTTP status %s x%d\n", s, c)) end
   io.write(string.format(
      "BENCH mode=%s requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f " ..
      "p999_ms=%.3f max_ms=%.3f sent=%d answered=%d ok=%d failures=%d non200=%d " ..
      "sock_errors=%d timeouts=%d avg_body=%.0f started=%d stopped=%d completed=%d\n",
      run_mode, summary.requests, seconds, summary.requests / seconds, ms(50), ms(90), ms(99),
      ms(99.9), latency.max / 1000, total.sent, total.answered, total.ok, total.failures,
      total.non200, e.connect + e.read + e.write + e.timeout, e.timeout,
      total.ok > 0 and total.body_bytes / total.ok or 0,
      total.ev_started, total.ev_stopped, total.ev_completed))
end
