// Every kind of handle the hooks track, with a unique index each (the slot of
// its counters). The one place that maps client-library handles to families.
#ifndef LEAKWATCH_INTERPOSE_KINDS_H_
#define LEAKWATCH_INTERPOSE_KINDS_H_

#include "tracker/kinds.h"

namespace leakwatch {

inline constexpr KindDesc kPgConn{"pg.conn", Family::kConn, 0, "backend_pid"};
inline constexpr KindDesc kPgResult{"pg.result", Family::kResult, 1,
                                    "backend_pid"};
// A cancel handle lives with its connection (psycopg2 keeps one per
// connection, and after close() until the connection object dies); held
// after PQfinish and referred to by nothing, it is a leak.
inline constexpr KindDesc kPgCancel{"pg.cancel",
                                    Family::kStmt,
                                    2,
                                    "backend_pid",
                                    /*lives_with_parent=*/true,
                                    /*judged_by_growth=*/false,
                                    /*ends_with_parent=*/false,
                                    /*kept_past_parent=*/true};

// A named prepared statement (PQprepare, PQsendPrepare): server memory of
// the connection's session, released by DEALLOCATE or PQclosePrepared. Its
// key is synthetic (PreparedKey in libpq.cc: bit 63 set, never an address).
// Judged like a MySQL statement, and gone with its connection.
inline constexpr KindDesc kPgPrepared{"pg.prepared",
                                      Family::kStmt,
                                      7,
                                      "backend_pid",
                                      /*lives_with_parent=*/true,
                                      /*judged_by_growth=*/true,
                                      /*ends_with_parent=*/true};

// MySQL/MariaDB. A statement lives with its connection: programs prepare
// statements once and keep them for the connection's life (statement caches),
// so it is reported live only once it outlives its connection, or when its
// site keeps growing (statements prepared per request, never used again).
inline constexpr KindDesc kMysqlConn{"mysql.conn", Family::kConn, 3,
                                     "connection_id"};
inline constexpr KindDesc kMysqlResult{"mysql.result", Family::kResult, 4,
                                       "connection_id"};
inline constexpr KindDesc kMysqlStmt{"mysql.stmt",
                                     Family::kStmt,
                                     5,
                                     "connection_id",
                                     /*lives_with_parent=*/true,
                                     /*judged_by_growth=*/true};

// Threads (POSIX and C11), keyed by pthread_t; the detail is the kernel tid.
inline constexpr KindDesc kThread{"thread", Family::kThread, 6, "tid"};

}  // namespace leakwatch

#endif  // LEAKWATCH_INTERPOSE_KINDS_H_
