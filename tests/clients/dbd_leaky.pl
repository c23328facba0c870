#!/usr/bin/perl
# Perl DBI, leaky: a job queue worker connects once per job and keeps the
# handles in the job's record; the record's cleanup (finish, disconnect) runs
# only when the job succeeds. Failed jobs are kept in a file-scope list for a
# retry that never comes, with their database handle and their statement
# handle, whose result was only half read.
#
# Usage: dbd_leaky.pl Pg|MariaDB
# Report jobs were written the same way.
#
# Leaks 2 connections and 2 results (pg.conn and pg.result, or mysql.conn and
# mysql.result: job 2 and report job 3, started more than the 1 s threshold
# apart), from the lines marked LEAK(kind), which the report names. Prints
# the same lines with or without the agent.
use strict;
use warnings;
use DBI;
use FindBin;
use lib $FindBin::Bin;
use LeakwatchWait qw(wait_for_warnings mariadb_dsn);
use Time::HiRes qw(sleep);

my $driver = shift // die "usage: $0 Pg|MariaDB\n";
my ($prefix) = $driver eq 'Pg' ? ('pg') : ('mysql');
my @dsn = $driver eq 'Pg' ? ('dbi:Pg:', '', '') : mariadb_dsn();

my @failed;    # jobs to retry later

sub run_job {
    my ($id) = @_;
    my $job = { id => $id };
    $job->{dbh} = DBI->connect(@dsn, { RaiseError => 1, PrintError => 0 }); # LEAK(conn)
    $job->{sth} = $job->{dbh}->prepare(
        'SELECT n FROM (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3) t'
        . ' WHERE n <= ? ORDER BY n');
    $job->{sth}->execute($id); # LEAK(result)
    my ($first) = $job->{sth}->fetchrow_array;
    if ($id > 1) {    # only one row wanted: the job fails and is kept
        push @failed, $job;
        return "job $id failed: more than one row";
    }
    delete($job->{sth})->finish;    # the statement goes before its connection
    $job->{dbh}->disconnect;
    return "job $id ok: $first";
}

sub run_report_job {
    my ($id) = @_;
    my $job = { id => $id };
    $job->{dbh} = DBI->connect(@dsn, { RaiseError => 1, PrintError => 0 }); # LEAK(conn)
    $job->{sth} = $job->{dbh}->prepare(
        'SELECT n FROM (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3) t'
        . ' WHERE n <= ? ORDER BY n DESC');
    $job->{sth}->execute($id); # LEAK(result)
    my ($last) = $job->{sth}->fetchrow_array;
    if ($id > 1) {    # one row wanted here too
        push @failed, $job;
        return "report job $id failed: more than one row";
    }
    delete($job->{sth})->finish;
    $job->{dbh}->disconnect;
    return "report job $id ok: $last";
}

for my $id (1 .. 3) {
    print $id == 3 ? run_report_job($id) : run_job($id), "\n";
    sleep 1.2;
}
wait_for_warnings("$prefix.conn", 2);
wait_for_warnings("$prefix.result", 2);
print scalar(@failed), " jobs to retry\n";
