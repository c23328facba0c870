/* Shared by the programs that wait for the agent's metrics file
 * (LEAKWATCH_METRICS) to show something, then copy it for the test. */
#ifndef LEAKWATCH_TESTS_PROGRAMS_METRICS_FILE_H_
#define LEAKWATCH_TESTS_PROGRAMS_METRICS_FILE_H_

#include <stdio.h>
#include <string.h>

/* True if one line of `path` contains both `a` and `b`. */
static inline int line_has(const char* path, const char* a, const char* b) {
  FILE* f = fopen(path, "r");
  if (f == NULL) return 0;
  char line[4096];
  int found = 0;
  while (!found && fgets(line, sizeof line, f) != NULL) {
    found = strstr(line, a) != NULL && strstr(line, b) != NULL;
  }
  fclose(f);
  return found;
}

static inline int copy_file(const char* from, const char* to) {
  FILE* in = fopen(from, "r");
  FILE* out = fopen(to, "w");
  if (in == NULL || out == NULL) return 0;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
  fclose(in);
  return fclose(out) == 0;
}

#endif /* LEAKWATCH_TESTS_PROGRAMS_METRICS_FILE_H_ */
