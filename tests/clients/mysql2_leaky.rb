# Ruby mysql2, leaky: a worker opens a client per batch and closes it in the
# happy path only. A batch whose first row says it is already done returns
# early, leaving the client and its half-read result in the top-level list
# of batches, referenced until Ruby exits (mysql2 frees a result only once
# every row was read, or when the object is collected).
#
# Retries of failed batches were written the same way.
#
# Leaks 2 mysql.conn and 2 mysql.result (batch 2 and the retry of batch 3,
# more than the 1 s threshold apart), from the lines marked LEAK(kind), which
# the report names. Prints the same lines with or without the agent.
require 'mysql2'
require_relative 'leakwatch_wait'

Batch = Struct.new(:id, :client, :rows)

def process(batch)
  batch.client = Mysql2::Client.new(**LeakwatchWait.mysql_settings) # LEAK(mysql.conn)
  batch.rows = batch.client.query( # LEAK(mysql.result)
    "SELECT #{batch.id} > 1 AS done UNION ALL SELECT 0"
  )
  first = batch.rows.first # reads one row of two
  return "batch #{batch.id}: already done" if first['done'] == 1

  batch.rows.to_a
  batch.client.close
  "batch #{batch.id}: processed"
end

def retry_batch(batch)
  batch.client = Mysql2::Client.new(**LeakwatchWait.mysql_settings) # LEAK(mysql.conn)
  batch.rows = batch.client.query( # LEAK(mysql.result)
    "SELECT #{batch.id} > 1 AS done UNION ALL SELECT 0"
  )
  first = batch.rows.first # reads one row of two
  return "retry of batch #{batch.id}: already done" if first['done'] == 1

  batch.rows.to_a
  batch.client.close
  "retry of batch #{batch.id}: processed"
end

batches = (1..3).map { |id| Batch.new(id) }
batches.each do |batch|
  puts batch.id == 3 ? retry_batch(batch) : process(batch)
  sleep 1.2
end
LeakwatchWait.wait_for_warnings('mysql.conn', 2)
LeakwatchWait.wait_for_warnings('mysql.result', 2)
puts "#{batches.size} batches"
