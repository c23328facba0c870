#!/usr/bin/perl
# Perl DBI, clean: two connections opened together at start-up serve four
# bursts of queries with pauses longer than the agent's threshold between
# them; every statement is read to its end or finished, every connection is
# disconnected (also when a query dies: the eval).
#
# Usage: dbd_clean.pl Pg|MariaDB
use strict;
use warnings;
use DBI;
use FindBin;
use lib $FindBin::Bin;
use LeakwatchWait qw(mariadb_dsn);
use Time::HiRes qw(sleep);

my $driver = shift // die "usage: $0 Pg|MariaDB\n";
my @dsn = $driver eq 'Pg' ? ('dbi:Pg:', '', '') : mariadb_dsn();

my @pool = map { DBI->connect(@dsn, { RaiseError => 1, PrintError => 0 }) }
    1 .. 2;
my $total = 0;
my $ok = eval {
    for my $burst (0 .. 3) {
        for my $i (0 .. $#pool) {
            my $sth = $pool[$i]->prepare('SELECT ? * 2');
            $sth->execute($burst + $i);
            while (my ($n) = $sth->fetchrow_array) { $total += $n }
            my ($one) = $pool[$i]->selectrow_array('SELECT 1');
            $total += $one;
        }
        sleep 0.3;
    }
    1;
};
my $error = $@;
$_->disconnect for @pool;
die $error unless $ok;
print "total $total\n";
