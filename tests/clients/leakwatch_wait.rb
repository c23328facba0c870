# What the Ruby client scripts share: waiting until leakwatch has reported
# what a leaky script leaked (the file named by LEAKWATCH_LOG; no wait
# without it), and the settings of the MariaDB test sandbox (MYSQL_TEST_*).
module LeakwatchWait
  module_function

  # Waits until the log has `count` live warnings about `kind` handles
  # ("pg.conn 0x... idle 1 s (threshold 1 s ..."); exits 3 after 30 s.
  def wait_for_warnings(kind, count)
    log = ENV['LEAKWATCH_LOG']
    return if log.nil? || log.empty?
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 30
    loop do
      seen = File.exist?(log) ? File.foreach(log).count { |l| l.include?("#{kind} 0x") && l.include?('(threshold ') } : 0
      return if seen >= count
      if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
        warn "the log never had #{count} warnings about #{kind}"
        exit 3
      end
      sleep 0.02
    end
  end

  # Keyword arguments for Mysql2::Client.new.
  def mysql_settings
    {
      host: ENV.fetch('MYSQL_TEST_HOST', '127.0.0.1'),
      port: Integer(ENV.fetch('MYSQL_TEST_PORT')),
      username: ENV.fetch('MYSQL_TEST_USER', 'leakwatch'),
      password: ENV.fetch('MYSQL_TEST_PASSWORD', ''),
      database: ENV.fetch('MYSQL_TEST_DB', 'leakwatch')
    }
  end
end
