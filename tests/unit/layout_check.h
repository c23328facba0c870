/* What the layout checks (python_layout_check.c, perl_layout_check.c,
 * php_layout_check.c) share: comparing a table's offset with the headers'
 * and the width of a loaded field with the field's. Each mismatch is
 * printed and counted in layout_failures. C, one translation unit each. */
#ifndef LEAKWATCH_TESTS_UNIT_LAYOUT_CHECK_H_
#define LEAKWATCH_TESTS_UNIT_LAYOUT_CHECK_H_

#include <stddef.h>
#include <stdio.h>

static int layout_failures = 0;

static inline void Check(const char* what, long table, long header) {
  if (table != header) {
    printf("%s: table %ld, headers %ld\n", what, table, header);
    ++layout_failures;
  }
}

/* The width of the field the reader loads. */
static inline void Width(const char* what, long loads, long header) {
  if (loads != header) {
    printf("%s: the reader loads %ld bytes, the field has %ld\n", what, loads,
           header);
    ++layout_failures;
  }
}

#define FIELD(what, table, type, member, width)           \
  do {                                                    \
    Check(what, table, (long)offsetof(type, member));     \
    Width(what, width, (long)sizeof(((type*)0)->member)); \
  } while (0)

#endif /* LEAKWATCH_TESTS_UNIT_LAYOUT_CHECK_H_ */
