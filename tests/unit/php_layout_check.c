/* Checks interpose/php_layout.h against the PHP 8.2 headers it is compiled
 * with (Debian's php8.2-dev, /usr/include/php/20220829 and its main, Zend and
 * TSRM directories): every offset, size and constant the PHP reader of script
 * frames uses is the headers'. Also the width of each field the reader loads
 * (its Load<T>). Prints each mismatch; exits 1 if any, 2 if the headers are
 * not an NTS PHP 8.2's. */
#include <php.h>
#include <stddef.h>
#include <stdio.h>
#include <zend_compile.h>
#include <zend_globals.h>
#include <zend_modules.h>

#include "interpose/php_layout.h"
#include "tests/unit/layout_check.h"


int main(void) {
#ifdef ZTS
  printf("PHP %s headers of a thread-safe (ZTS) build: the table is NTS's\n",
         PHP_VERSION);
  return 2;
#else
  if (PHP_MAJOR_VERSION != LW_PHP_MAJOR || PHP_MINOR_VERSION != LW_PHP_MINOR ||
      ZEND_MODULE_API_NO != LW_PHP_API) {
    printf("headers of PHP %s (API %d), table for %d.%d (API %d)\n",
           PHP_VERSION, ZEND_MODULE_API_NO, LW_PHP_MAJOR, LW_PHP_MINOR,
           LW_PHP_API);
    return 2;
  }

  /* zend_executor_globals (Zend/zend_globals.h). */
  Check("eg_size", LW_PHP_EG_SIZE, sizeof(zend_executor_globals));
  FIELD("eg_current_execute_data", LW_PHP_EG_CURRENT_EXECUTE_DATA,
        zend_executor_globals, current_execute_data, 8);

  /* zend_execute_data (Zend/zend_compile.h). */
  FIELD("ex_opline", LW_PHP_EX_OPLINE, zend_execute_data, opline, 8);
  FIELD("ex_func", LW_PHP_EX_FUNC, zend_execute_data, func, 8);
  FIELD("ex_prev_execute_data", LW_PHP_EX_PREV_EXECUTE_DATA, zend_execute_data,
        prev_execute_data, 8);

  /* zend_function: common, the same in op_array, then op_array's own. */
  FIELD("fn_type (common)", LW_PHP_FN_TYPE, zend_function, common.type, 1);
  FIELD("fn_type (op_array)", LW_PHP_FN_TYPE, zend_function, op_array.type, 1);
  FIELD("fn_type (type)", LW_PHP_FN_TYPE, zend_function, type, 1);
  FIELD("fn_function_name (common)", LW_PHP_FN_FUNCTION_NAME, zend_function,
        common.function_name, 8);
  FIELD("fn_function_name (op_array)", LW_PHP_FN_FUNCTION_NAME, zend_function,
        op_array.function_name, 8);
  FIELD("fn_scope (common)", LW_PHP_FN_SCOPE, zend_function, common.scope, 8);
  FIELD("fn_scope (op_array)", LW_PHP_FN_SCOPE, zend_function, op_array.scope,
        8);
  FIELD("op_array_last", LW_PHP_OP_ARRAY_LAST, zend_function, op_array.last, 4);
  FIELD("op_array_opcodes", LW_PHP_OP_ARRAY_OPCODES, zend_function,
        op_array.opcodes, 8);
  FIELD("op_array_filename", LW_PHP_OP_ARRAY_FILENAME, zend_function,
        op_array.filename, 8);
  Check("ZEND_USER_FUNCTION", LW_PHP_USER_FUNCTION, ZEND_USER_FUNCTION);
  Check("ZEND_EVAL_CODE", LW_PHP_EVAL_CODE, ZEND_EVAL_CODE);

  /* zend_op (Zend/zend_compile.h). */
  Check("op_size", LW_PHP_OP_SIZE, sizeof(zend_op));
  FIELD("op_lineno", LW_PHP_OP_LINENO, zend_op, lineno, 4);

  /* zend_string (Zend/zend_types.h). */
  FIELD("str_len", LW_PHP_STR_LEN, zend_string, len, 8);
  FIELD("str_val", LW_PHP_STR_VAL, zend_string, val[0], 1);

  /* zend_class_entry (Zend/zend.h). */
  FIELD("ce_name", LW_PHP_CE_NAME, zend_class_entry, name, 8);

  printf("PHP %s (API %d): %s\n", PHP_VERSION, ZEND_MODULE_API_NO,
         layout_failures ? "MISMATCH" : "layout ok");
  return layout_failures ? 1 : 0;
#endif
}
