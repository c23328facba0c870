<?php
// PHP PDO (pdo_pgsql), clean: two connections opened together at start-up
// serve four bursts of queries with pauses longer than the agent's threshold
// between them; every statement's cursor is closed, and the connections are
// released by dropping the PDO objects.
$pool = [];
for ($i = 0; $i < 2; $i++) {
    $pool[] = new PDO('pgsql:connect_timeout=10', null, null,
        [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
}
$total = 0;
for ($burst = 0; $burst < 4; $burst++) {
    foreach ($pool as $i => $pdo) {
        $stmt = $pdo->prepare('SELECT ?::int * 2 AS n');
        $stmt->execute([$burst + $i]);
        $total += (int) $stmt->fetchColumn();
        $stmt->closeCursor();
        $stmt = null;
    }
    usleep(300000);
}
$pool = [];
echo "total $total\n";
