# Ruby pg, clean: two connections opened together at start-up serve four
# bursts of queries with pauses longer than the agent's threshold between
# them; results are cleared by the block form of exec_params, connections
# closed in an ensure block.
require 'pg'

pool = Array.new(2) { PG.connect }
total = 0
begin
  4.times do |burst|
    pool.each_with_index do |conn, i|
      conn.transaction do
        conn.exec_params('SELECT $1::int * 2 AS n', [burst + i]) do |res|
          total += res[0]['n'].to_i
        end
      end
    end
    sleep 0.3
  end
ensure
  pool.each(&:close)
end
puts "total #{total}"
