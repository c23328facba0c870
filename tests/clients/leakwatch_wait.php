<?php
// What the PHP client scripts share: waiting until leakwatch has reported
// what a leaky script leaked (the file named by LEAKWATCH_LOG; no wait
// without it).

// Waits until the log has $count live warnings about $kind handles
// ("pg.conn 0x... idle 1 s (threshold 1 s ..."); exits 3 after 30 s.
function wait_for_warnings(string $kind, int $count): void
{
    $log = getenv('LEAKWATCH_LOG');
    if ($log === false || $log === '') {
        return;
    }
    $deadline = microtime(true) + 30;
    while (true) {
        $seen = 0;
        $lines = @file($log);
        foreach ($lines === false ? [] : $lines as $line) {
            if (str_contains($line, "$kind 0x") && str_contains($line, '(threshold ')) {
                $seen++;
            }
        }
        if ($seen >= $count) {
            return;
        }
        if (microtime(true) > $deadline) {
            fwrite(STDERR, "the log never had $count warnings about $kind\n");
            exit(3);
        }
        usleep(20000);
    }
}
