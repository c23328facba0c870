-- sysbench, clean: a custom workload (run with --threads=2 --events=8
-- --time=0). Each worker connects once in thread_init and disconnects in
-- thread_done; every event runs three queries, reads their rows, and rests
-- longer than the agent's threshold, so the workers' connections are used in
-- bursts with pauses. Works with --db-driver=pgsql and --db-driver=mysql.
-- The report hooks print only what does not depend on timing.

local ffi = require("ffi")
ffi.cdef [[ int usleep(unsigned int usec); ]]

local con

function thread_init()
   con = sysbench.sql.driver():connect()
end

function event()
   for i = 1, 3 do
      local rs = con:query(string.format("SELECT %d * 2", i))
      local row = rs:fetch_row()
      assert(tonumber(row[1]) == i * 2)
      rs:free()
   end
   ffi.C.usleep(300000)
end

function thread_done()
   con:disconnect()
end

sysbench.hooks.report_intermediate = function(stat) end
sysbench.hooks.report_cumulative = function(stat)
   print(string.format("events: %d, errors: %d", stat.events, stat.errors))
end
