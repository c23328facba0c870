<?php
// PHP pgsql, clean: two connections opened together at start-up serve four
// bursts of queries with pauses longer than the agent's threshold between
// them; every result is freed, every connection closed in a finally block.
$pool = [];
for ($i = 0; $i < 2; $i++) {
    $pool[] = pg_connect('connect_timeout=10', PGSQL_CONNECT_FORCE_NEW);
}
$total = 0;
try {
    for ($burst = 0; $burst < 4; $burst++) {
        foreach ($pool as $i => $conn) {
            $result = pg_query_params($conn, 'SELECT $1::int * 2 AS n', [$burst + $i]);
            while ($row = pg_fetch_assoc($result)) {
                $total += (int) $row['n'];
            }
            pg_free_result($result);
        }
        usleep(300000);
    }
} finally {
    foreach ($pool as $conn) {
        pg_close($conn);
    }
}
echo "total $total\n";
