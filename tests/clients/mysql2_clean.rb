# Ruby mysql2, clean: two clients opened together at start-up serve four
# bursts of queries with pauses longer than the agent's threshold between
# them; every result is read to its end (each), every client closed in an
# ensure block.
require 'mysql2'
require_relative 'leakwatch_wait'

pool = Array.new(2) { Mysql2::Client.new(**LeakwatchWait.mysql_settings) }
total = 0
begin
  4.times do |burst|
    pool.each_with_index do |client, i|
      client.query("SELECT #{burst + i} * 2 AS n").each { |row| total += row['n'] }
    end
    sleep 0.3
  end
ensure
  pool.each(&:close)
end
puts "total #{total}"
