/* Checks interpose/python_layout.h against the CPython headers it is
 * compiled with (one executable per installed version): every offset the
 * Python reader of script frames uses is the header's offsetof. Prints each
 * mismatch; exits 1 if any, 2 if the table has no row for this version. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>

#include "internal/pycore_code.h"
#include "internal/pycore_frame.h"
#include "interpose/python_layout.h"
#include "tests/unit/layout_check.h"


int main(void) {
  static const struct LwPyLayout layouts[] = LW_PY_LAYOUTS;
  const struct LwPyLayout* L = NULL;
  for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); ++i) {
    if (layouts[i].minor == PY_MINOR_VERSION) L = &layouts[i];
  }
  if (PY_MAJOR_VERSION != 3 || L == NULL) {
    printf("no layout for Python %s\n", PY_VERSION);
    return 2;
  }
#if PY_VERSION_HEX >= 0x030d0000
  Check("tstate_cframe", L->tstate_cframe, -1);
  Check("current_frame", L->cframe_current,
        offsetof(PyThreadState, current_frame));
  Check("frame_code", L->frame_code,
        offsetof(_PyInterpreterFrame, f_executable));
  Check("frame_instr", L->frame_instr,
        offsetof(_PyInterpreterFrame, instr_ptr));
#else
  Check("tstate_cframe", L->tstate_cframe, offsetof(PyThreadState, cframe));
  Check("cframe_current", L->cframe_current,
        offsetof(_PyCFrame, current_frame));
  Check("frame_code", L->frame_code, offsetof(_PyInterpreterFrame, f_code));
  Check("frame_instr", L->frame_instr,
        offsetof(_PyInterpreterFrame, prev_instr));
#endif
#if PY_VERSION_HEX < 0x030c0000
  Check("frame_is_entry", L->frame_is_entry,
        offsetof(_PyInterpreterFrame, is_entry));
#else
  Check("frame_is_entry", L->frame_is_entry, -1);
  Check("owned_by_cstack", LW_PY_OWNED_BY_CSTACK, FRAME_OWNED_BY_CSTACK);
#endif
  Check("frame_previous", L->frame_previous,
        offsetof(_PyInterpreterFrame, previous));
  Check("frame_owner", L->frame_owner, offsetof(_PyInterpreterFrame, owner));
  Check("code_filename", L->code_filename,
        offsetof(PyCodeObject, co_filename));
  Check("code_qualname", L->code_qualname,
        offsetof(PyCodeObject, co_qualname));
  Check("code_firstlineno", L->code_firstlineno,
        offsetof(PyCodeObject, co_firstlineno));
  Check("code_adaptive", L->code_adaptive,
        offsetof(PyCodeObject, co_code_adaptive));
  Check("ascii_size", L->ascii_size, sizeof(PyASCIIObject));
  Check("compact_size", L->compact_size, sizeof(PyCompactUnicodeObject));
  Check("ob_type", LW_PY_OB_TYPE, offsetof(PyObject, ob_type));
  Check("unicode_length", LW_PY_UNICODE_LENGTH,
        offsetof(PyASCIIObject, length));
  Check("unicode_state", LW_PY_UNICODE_STATE, offsetof(PyASCIIObject, state));
  printf("Python %s: %s\n", PY_VERSION, layout_failures ? "MISMATCH" : "layout ok");
  return layout_failures ? 1 : 0;
}
