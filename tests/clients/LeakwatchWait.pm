# What the Perl client scripts share: waiting until leakwatch has reported
# what a leaky script leaked (the file named by LEAKWATCH_LOG; no wait without
# it), and the DSN of the MariaDB test sandbox (MYSQL_TEST_*).
package LeakwatchWait;
use strict;
use warnings;
use Exporter 'import';
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(wait_for_warnings mariadb_dsn);

# Waits until the log has $count live warnings about $kind handles
# ("pg.conn 0x... idle 1 s (threshold 1 s ..."); exits 3 after 30 s.
sub wait_for_warnings {
    my ($kind, $count) = @_;
    my $log = $ENV{LEAKWATCH_LOG};
    return unless defined $log && $log ne '';
    my $deadline = time + 30;
    while (1) {
        my $seen = 0;
        if (open my $fh, '<', $log) {
            while (my $line = <$fh>) {
                $seen++ if index($line, "$kind 0x") >= 0
                    && index($line, '(threshold ') >= 0;
            }
            close $fh;
        }
        return if $seen >= $count;
        if (time > $deadline) {
            print STDERR "the log never had $count warnings about $kind\n";
            exit 3;
        }
        sleep 0.02;
    }
}

# DBI arguments for the sandbox: (dsn, user, password).
sub mariadb_dsn {
    my $host = $ENV{MYSQL_TEST_HOST} || '127.0.0.1';
    my $db = $ENV{MYSQL_TEST_DB} || 'leakwatch';
    return ("dbi:MariaDB:database=$db;host=$host;port=$ENV{MYSQL_TEST_PORT}",
            $ENV{MYSQL_TEST_USER} || 'leakwatch',
            $ENV{MYSQL_TEST_PASSWORD} // '');
}

1;
