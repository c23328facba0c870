/* A module with its own copy of a client library's entry point built in (as
 * a module statically linked with libpq would have): loaded with
 * RTLD_DEEPBIND, its calls to it are its own and no hook can see them. Never
 * called. */
void* PQconnectdb(const char* conninfo) {
  (void)conninfo;
  return 0;
}
