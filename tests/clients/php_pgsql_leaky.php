<?php
// PHP pgsql, leaky: a long-running CLI worker. Each job opens its own
// connection (PGSQL_CONNECT_FORCE_NEW: pg_connect would otherwise hand back
// the same link) and keeps it and its query result on the job object; the
// job frees them only when it completes. Jobs that fail stay in the worker's
// list of failed jobs until the script ends.
//
// Leaks 2 pg.conn and 2 pg.result (jobs 2 and 3, more than the 1 s threshold
// apart). Prints the same lines with or without the agent.
require __DIR__ . '/leakwatch_wait.php';

final class Job
{
    public $conn;
    public $result;

    public function __construct(public int $id)
    {
    }

    public function run(): string
    {
        // Everything else comes from the PG* environment variables.
        $this->conn = pg_connect('connect_timeout=10', PGSQL_CONNECT_FORCE_NEW);
        $this->result = pg_query_params($this->conn,
            'SELECT $1::int % 2 = 1 AS odd', [$this->id]);
        if (pg_fetch_result($this->result, 0, 'odd') !== 't') {
            throw new RuntimeException("job {$this->id}: rejected");
        }
        pg_free_result($this->result);
        pg_close($this->conn);
        return "job {$this->id}: done";
    }
}

$failed = [];
foreach ([1, 2, 4] as $id) {
    $job = new Job($id);
    try {
        echo $job->run(), "\n";
    } catch (RuntimeException $e) {
        echo $e->getMessage(), "\n";
        $failed[] = $job;
    }
    usleep(1200000);
}
wait_for_warnings('pg.conn', 2);
wait_for_warnings('pg.result', 2);
echo count($failed), " jobs failed\n";
