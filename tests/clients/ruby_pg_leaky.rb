# Ruby pg, leaky: a small repository class opens its own connection and runs
# its query in the constructor; callers are expected to call #close. A
# report loop builds one per tenant and forgets #close when the tenant has
# no invoices (the early `next`). The repositories stay referenced from the
# top-level list of everything built, with their connection and their
# PG::Result, until Ruby exits.
#
# The archive's repository was written the same way.
#
# Leaks 2 pg.conn and 2 pg.result (tenant "b" and the archive of tenant "c",
# more than the 1 s threshold apart), from the lines marked LEAK(kind), which
# the report names. Prints the same lines with or without the agent.
require 'pg'
require_relative 'leakwatch_wait'

class InvoiceRepository
  attr_reader :result

  def initialize(tenant)
    @conn = PG.connect # the PG* environment variables; LEAK(pg.conn)
    @result = @conn.exec_params( # LEAK(pg.result)
      "SELECT v FROM (VALUES ('a', 10), ('a', 20)) AS i(tenant, v) " \
      'WHERE tenant = $1', [tenant]
    )
  end

  def close
    @result.clear
    @conn.close
  end
end

class ArchiveRepository
  attr_reader :result

  def initialize(tenant)
    @conn = PG.connect # LEAK(pg.conn)
    @result = @conn.exec_params( # LEAK(pg.result)
      "SELECT v FROM (VALUES ('a', 5)) AS i(tenant, v) WHERE tenant = $1",
      [tenant]
    )
  end

  def close
    @result.clear
    @conn.close
  end
end

built = []
%w[a b c].each do |tenant|
  repo = (tenant == 'c' ? ArchiveRepository : InvoiceRepository).new(tenant)
  built << repo
  if repo.result.ntuples.zero?
    puts "tenant #{tenant}: no invoices"
    sleep 1.2
    next
  end
  puts "tenant #{tenant}: #{repo.result.values.flatten.map(&:to_i).sum}"
  repo.close
  sleep 1.2
end
LeakwatchWait.wait_for_warnings('pg.conn', 2)
LeakwatchWait.wait_for_warnings('pg.result', 2)
puts "#{built.size} repositories built"
