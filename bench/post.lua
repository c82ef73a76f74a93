-- post.lua -- wrk script for every row of bench/run.sh: POSTs the file named
-- by $BODY_FILE as application/json to the URL's path (with METHOD=GET: a
-- plain GET, no body; the "upstream direct" rows), and prints one
-- machine-readable line at the end:
--   BENCH requests=N duration_us=N p50_us=N p99_us=N status=N connect=N read=N write=N timeout=N bad_body=N mean_us=N
-- status = responses with a status >= 400 (wrk's count of non-2xx/3xx).
-- With $CHECK_BODY set (the fan-out rows), every 200 body is also searched
-- for that string ("error": a sub-request failed inside a 200 answer) and
-- the matches are counted in bad_body. Off by default: a Lua response()
-- callback slows wrk down.
if os.getenv("METHOD") == "GET" then
	wrk.method = "GET"
else
	local f = assert(io.open(assert(os.getenv("BODY_FILE"), "BODY_FILE not set"), "rb"))
	wrk.method = "POST"
	wrk.body = f:read("*a")
	f:close()
	wrk.headers["Content-Type"] = "application/json"
end

local threads = {}
function setup(thread)
	table.insert(threads, thread)
end

local check = os.getenv("CHECK_BODY")
if check and check ~= "" then
	bad_body = 0
	function response(status, headers, body)
		if status == 200 and body and body:find(check, 1, true) then
			bad_body = bad_body + 1
		end
	end
end

function done(summary, latency, requests)
	local bad = 0
	for _, t in ipairs(threads) do
		bad = bad + (t:get("bad_body") or 0)
	end
	local e = summary.errors
	io.write(string.format(
		"BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d status=%d connect=%d read=%d write=%d timeout=%d bad_body=%d mean_us=%d\n",
		summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
		e.status, e.connect, e.read, e.write, e.timeout, bad, latency.mean))
end
