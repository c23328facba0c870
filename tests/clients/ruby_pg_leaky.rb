# Ruby pg, leaky: a small repository class opens its own connection and runs
# its query in the constructor; callers are expected to call #close. A
# report loop builds one per tenant and forgets #close when the tenant has
# no invoices (the early `next`). The repositories stay referenced from the
# top-level list of everything built, with their connection and their
# PG::Result, until Ruby exits.
#
# Leaks 2 pg.conn and 2 pg.result (tenants "b" and "c", more than the 1 s
# threshold apart). Prints the same lines with or without the agent.
require 'pg'
require_relative 'leakwatch_wait'

class InvoiceRepository
  attr_reader :result

  def initialize(tenant)
    @conn = PG.connect # the PG* environment variables
    @result = @conn.exec_params(
      "SELECT v FROM (VALUES ('a', 10), ('a', 20)) AS i(tenant, v) " \
      'WHERE tenant = $1', [tenant]
    )
  end

  def close
    @result.clear
    @conn.close
  end
end

built = []
%w[a b c].each do |tenant|
  repo = InvoiceRepository.new(tenant)
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
