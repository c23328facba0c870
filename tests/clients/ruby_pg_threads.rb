# Ruby pg under threads, clean: the agent reads the Ruby frames of every
# thread that calls libpq, with the GVL released, while other threads run
# Ruby code, collect and compact the heap. 8 threads each open a connection
# and run queries for RUBY_PG_THREADS_SECONDS (20 by default) from blocks,
# a recursive method, a fiber (an external Enumerator) and a rescued error,
# reconnecting now and then; every result is cleared, every connection
# closed. Prints one line per thread and a total.
require 'pg'

SECONDS = Float(ENV.fetch('RUBY_PG_THREADS_SECONDS', '20'))
THREADS = 8

def query_at_depth(conn, depth, n)
  return conn.exec_params('SELECT $1::int + 1 AS n', [n]) { |r| r[0]['n'].to_i } if depth.zero?

  query_at_depth(conn, depth - 1, n)
end

def worker(id, deadline)
  count = 0
  conn = PG.connect
  while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
    count += query_at_depth(conn, count % 30, id) - id
    rows = Enumerator.new do |y|
      conn.exec('SELECT generate_series(1, 3) AS s') { |r| r.each { |row| y << row['s'] } }
    end
    count += rows.next.to_i
    begin
      conn.exec('SELECT 1/0')
    rescue PG::Error
      count += 1
    end
    if (count % 50).zero?
      conn.close
      conn = PG.connect
    end
  end
  count
ensure
  conn&.close
end

deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + SECONDS
churn = Thread.new do
  while Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
    Array.new(10_000) { |i| "s#{i}" }
    GC.start
    GC.compact if GC.respond_to?(:compact)
    sleep 0.05
  end
end
workers = Array.new(THREADS) { |id| Thread.new { worker(id, deadline) } }
total = workers.each_with_index.sum do |t, id|
  n = t.value
  puts "thread #{id}: #{n.positive? ? 'ran' : 'did not run'}"
  n
end
churn.join
puts "total #{total.positive? ? 'positive' : 'zero'}"
