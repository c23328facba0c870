/* The PHP 8.2 layouts the PHP reader of script frames reads
 * (interpose/script_php.cc): Zend module API 20220829, x86-64, non-thread-safe
 * (NTS) builds. C and C++: the layout check (tests/unit/php_layout_check.c),
 * compiled against Debian's php8.2-dev headers (/usr/include/php/20220829),
 * compares every value with the headers' offsetof, sizeof and constants.
 *
 * Read off the headers: Zend/zend_globals.h (zend_executor_globals),
 * Zend/zend_compile.h (zend_execute_data, zend_function, zend_op_array,
 * zend_op, ZEND_USER_FUNCTION, ZEND_EVAL_CODE), Zend/zend_types.h
 * (zend_string), Zend/zend.h (zend_class_entry). */
#ifndef LEAKWATCH_INTERPOSE_PHP_LAYOUT_H_
#define LEAKWATCH_INTERPOSE_PHP_LAYOUT_H_

/* The version these are for (PHP_MAJOR_VERSION, PHP_MINOR_VERSION) and its
 * module API (ZEND_MODULE_API_NO). */
#define LW_PHP_MAJOR 8
#define LW_PHP_MINOR 2
#define LW_PHP_API 20220829

/* struct _zend_executor_globals: its size is executor_globals' symbol size. */
#define LW_PHP_EG_SIZE 1800
#define LW_PHP_EG_CURRENT_EXECUTE_DATA 488 /* current_execute_data */

/* struct _zend_execute_data. */
#define LW_PHP_EX_OPLINE 0             /* const zend_op *opline */
#define LW_PHP_EX_FUNC 24              /* zend_function *func */
#define LW_PHP_EX_PREV_EXECUTE_DATA 48 /* prev_execute_data */

/* union _zend_function: common (and the same in op_array), then
 * zend_op_array's own fields. */
#define LW_PHP_FN_TYPE 0             /* uint8_t type */
#define LW_PHP_FN_FUNCTION_NAME 8    /* zend_string *function_name */
#define LW_PHP_FN_SCOPE 16           /* zend_class_entry *scope */
#define LW_PHP_OP_ARRAY_LAST 80      /* uint32_t last */
#define LW_PHP_OP_ARRAY_OPCODES 88   /* zend_op *opcodes */
#define LW_PHP_OP_ARRAY_FILENAME 152 /* zend_string *filename */
#define LW_PHP_USER_FUNCTION 2       /* ZEND_USER_FUNCTION */
#define LW_PHP_EVAL_CODE 4           /* ZEND_EVAL_CODE */

/* struct _zend_op. */
#define LW_PHP_OP_SIZE 32   /* sizeof */
#define LW_PHP_OP_LINENO 24 /* uint32_t lineno */

/* struct _zend_string. */
#define LW_PHP_STR_LEN 16 /* size_t len */
#define LW_PHP_STR_VAL 24 /* char val[1] */

/* struct _zend_class_entry. */
#define LW_PHP_CE_NAME 8 /* zend_string *name */

#endif /* LEAKWATCH_INTERPOSE_PHP_LAYOUT_H_ */
