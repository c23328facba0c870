<?php
// PHP PDO (pdo_pgsql), leaky: a repository that opens its own PDO
// connection and keeps the statement of its last lookup open for a
// later "next page"; callers drop it (PDO closes on destruction) except
// that the request log keeps every repository built, with its connection
// and its statement's result, until the script ends.
//
// The order repository was written the same way.
//
// Leaks 2 pg.conn and 2 pg.result (requests for user 7 and order 8, more
// than the 1 s threshold apart), from the lines marked LEAK(kind), which the
// report names. Prints the same lines with or without the agent.
require __DIR__ . '/leakwatch_wait.php';

final class UserRepository
{
    private PDO $pdo;
    public ?PDOStatement $last = null;

    public function __construct()
    {
        // The PG* environment variables supply host, port, user and dbname.
        $this->pdo = new PDO('pgsql:connect_timeout=10', null, null, // LEAK(pg.conn)
            [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
    }

    public function name(int $id): ?string
    {
        $this->last = $this->pdo->prepare(
            "SELECT name FROM (VALUES (1, 'ann'), (1, 'ann again')) AS u(id, name) WHERE id = ?");
        $this->last->execute([$id]); // LEAK(pg.result)
        $name = $this->last->fetchColumn();
        if ($name === false) {
            return null;
        }
        $this->last->closeCursor();
        return $name;
    }
}

final class OrderRepository
{
    private PDO $pdo;
    public ?PDOStatement $last = null;

    public function __construct()
    {
        $this->pdo = new PDO('pgsql:connect_timeout=10', null, null, // LEAK(pg.conn)
            [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
    }

    public function name(int $id): ?string
    {
        $this->last = $this->pdo->prepare(
            "SELECT 'order ' || total FROM (VALUES (1, 20)) AS o(id, total) WHERE id = ?");
        $this->last->execute([$id]); // LEAK(pg.result)
        $name = $this->last->fetchColumn();
        if ($name === false) {
            return null;
        }
        $this->last->closeCursor();
        return $name;
    }
}

$requestLog = [];
foreach ([1, 7, 8] as $id) {
    $repo = $id === 8 ? new OrderRepository() : new UserRepository();
    $name = $repo->name($id);
    if ($name === null) {
        $requestLog[] = $repo; // kept for the request log, "to debug later"
        echo "user $id: not found\n";
    } else {
        echo "user $id: $name\n";
    }
    $repo = null;
    usleep(1200000);
}
wait_for_warnings('pg.conn', 2);
wait_for_warnings('pg.result', 2);
echo count($requestLog), " requests logged\n";
