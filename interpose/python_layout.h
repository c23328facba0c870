/* The CPython layouts the Python reader of script frames reads
 * (interpose/script_python.cc), one row per minor version. C and C++: the
 * layout check (tests/unit/python_layout_check.c), compiled against each
 * version's own headers, compares every offset with offsetof.
 *
 * Read off the headers: Include/cpython/pystate.h (PyThreadState.cframe,
 * .current_frame), Include/internal/pycore_frame.h (_PyCFrame,
 * _PyInterpreterFrame), Include/cpython/code.h (PyCodeObject),
 * Include/cpython/unicodeobject.h (PyASCIIObject, PyCompactUnicodeObject). */
#ifndef LEAKWATCH_INTERPOSE_PYTHON_LAYOUT_H_
#define LEAKWATCH_INTERPOSE_PYTHON_LAYOUT_H_

struct LwPyLayout {
  int minor;
  /* PyThreadState -> innermost _PyInterpreterFrame: through the _PyCFrame
   * at tstate_cframe (3.11, 3.12), or directly (tstate_cframe < 0: 3.13). */
  int tstate_cframe;
  int cframe_current; /* in the _PyCFrame, or in the thread state (3.13) */
  /* _PyInterpreterFrame */
  int frame_code;     /* f_code (f_executable in 3.13: may be no code) */
  int frame_previous; /* previous */
  int frame_instr;    /* prev_instr (instr_ptr in 3.13) */
  int frame_owner;    /* owner (char) */
  int frame_is_entry; /* is_entry (bool, 3.11); -1: shim frames instead */
  /* PyCodeObject */
  int code_filename;
  int code_qualname;
  int code_firstlineno;
  int code_adaptive; /* co_code_adaptive: the instructions */
  /* sizeof(PyASCIIObject), sizeof(PyCompactUnicodeObject): where a compact
   * string's characters start. */
  int ascii_size;
  int compact_size;
};

#define LW_PY_LAYOUTS                                              \
  {                                                                \
    {11, 56, 8, 32, 48, 56, 69, 68, 112, 128, 72, 184, 48, 72},    \
        {12, 56, 0, 0, 8, 56, 70, -1, 112, 128, 68, 192, 40, 56},  \
        {13, -1, 72, 0, 8, 56, 70, -1, 112, 128, 68, 200, 40, 56}, \
  }

/* _PyInterpreterFrame.owner of the shim frame each native call of the eval
 * loop pushes (3.12, 3.13: FRAME_OWNED_BY_CSTACK). */
#define LW_PY_OWNED_BY_CSTACK 3
/* PyObject.ob_type; PyASCIIObject.length and .state. */
#define LW_PY_OB_TYPE 8
#define LW_PY_UNICODE_LENGTH 16
#define LW_PY_UNICODE_STATE 32

#endif /* LEAKWATCH_INTERPOSE_PYTHON_LAYOUT_H_ */
