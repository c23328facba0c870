<?php
// PHP pgsql, leaky: a long-running CLI worker. Each job opens its own
// connection (PGSQL_CONNECT_FORCE_NEW: pg_connect would otherwise hand back
// the same link) and keeps it and its query result on the job object; the
// job frees them only when it completes. Jobs that fail stay in the worker's
// list of failed jobs until the script ends.
//
// Export jobs were written the same way, with the same bug.
//
// Leaks 2 pg.conn and 2 pg.result (job 2 and export job 4, more than the 1 s
// threshold apart), from the lines marked LEAK(kind), which the report names.
// Prints the same lines with or without the agent.
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
        $this->conn = pg_connect('connect_timeout=10', PGSQL_CONNECT_FORCE_NEW); // LEAK(pg.conn)
        $this->result = pg_query_params($this->conn, // LEAK(pg.result)
            'SELECT $1::int % 2 = 1 AS odd', [$this->id]);
        if (pg_fetch_result($this->result, 0, 'odd') !== 't') {
            throw new RuntimeException("job {$this->id}: rejected");
        }
        pg_free_result($this->result);
        pg_close($this->conn);
        return "job {$this->id}: done";
    }
}

final class ExportJob
{
    public $conn;
    public $result;

    public function __construct(public int $id)
    {
    }

    public function run(): string
    {
        $this->conn = pg_connect('connect_timeout=10', PGSQL_CONNECT_FORCE_NEW); // LEAK(pg.conn)
        $this->result = pg_query_params($this->conn, // LEAK(pg.result)
            'SELECT $1::int < 3 AS small', [$this->id]);
        if (pg_fetch_result($this->result, 0, 'small') !== 't') {
            throw new RuntimeException("export {$this->id}: too large");
        }
        pg_free_result($this->result);
        pg_close($this->conn);
        return "export {$this->id}: done";
    }
}

$failed = [];
foreach ([1, 2, 4] as $id) {
    $job = $id === 4 ? new ExportJob($id) : new Job($id);
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
