-- wrk script: POST /documents bulks of 100 new documents (unique ids), for write throughput
-- measured by an independent client. docs/s = requests/s x 100 (non-200 answers are counted
-- by wrk as "Non-2xx"; a 200 bulk can still hold refused items: check the root's
-- scatter_root_ingest_docs_total{outcome="failed"} stays 0).
--   wrk -t1 -c4 -d15s -s benches/scripts/wrk-bulk.lua http://127.0.0.1:8390
local counter = 0
local prefix = tostring(math.random(1, 1000000000))
local filler = string.rep("a dictionary entry with several words of body text ", 8)
wrk.method = "POST"
wrk.headers["content-type"] = "application/x-ndjson"

request = function()
  local lines = {}
  for i = 1, 100 do
    counter = counter + 1
    lines[i] = string.format('{"id":"wrk-%s-%d","title":"entry %d","body":"%s"}',
      prefix, counter, counter, filler)
  end
  return wrk.format(nil, "/documents", nil, table.concat(lines, "\n"))
end
