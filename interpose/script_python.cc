// Script frames of CPython 3.11, 3.12 and 3.13 (interpose/script.h).
//
// The calling thread's own thread state is PyGILState_GetThisThreadState():
// a thread-specific value, set for every thread that ever ran Python code,
// and kept while the thread has released the GIL (psycopg2 and MySQLdb call
// libpq and libmariadb without it). From it, the innermost interpreter frame
// and the chain of `previous` frames. Nothing here takes the GIL, allocates
// or can run Python code: the walk reads memory the calling thread's own
// frames keep alive (each frame holds a strong reference to its code
// object), and a description reads the code object's strings and calls
// PyCode_Addr2Line (a pure computation over the immutable line table, which
// faulthandler calls from signal handlers without the GIL).
//
// The layouts are internal to CPython and change between minor versions:
// interpose/python_layout.h has them, read off each version's headers (3.11:
// Debian 12's libpython3.11-dev; 3.12.1 and 3.13.0: the pyenv builds on this
// machine), and tests/unit/python_layout_check.c checks them against those
// headers. Another version gets native stacks and one line in the log.
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "interpose/bind.h"
#include "interpose/python_layout.h"
#include "interpose/script.h"
#include "tracker/elf_image.h"

namespace leakwatch {
namespace {

using PyLayout = LwPyLayout;
constexpr PyLayout kLayouts[] = LW_PY_LAYOUTS;

constexpr char kOwnedByCStack = LW_PY_OWNED_BY_CSTACK;
constexpr int kObType = LW_PY_OB_TYPE;
constexpr int kUnicodeLength = LW_PY_UNICODE_LENGTH;
constexpr int kUnicodeState = LW_PY_UNICODE_STATE;

const PyLayout* g_layout = nullptr;
void* (*g_this_thread_state)() = nullptr;  // PyGILState_GetThisThreadState
int (*g_addr2line)(void*, int) = nullptr;  // PyCode_Addr2Line
uintptr_t g_code_type = 0;                 // &PyCode_Type
uintptr_t g_unicode_type = 0;              // &PyUnicode_Type

bool IsCode(uintptr_t p) {
  return PlausibleAddress(p) && LoadAt<uintptr_t>(p + kObType) == g_code_type;
}

int Walk(ScriptFrameRef* frames, int max) {
  const PyLayout& L = *g_layout;
  const uintptr_t tstate = reinterpret_cast<uintptr_t>(g_this_thread_state());
  if (!PlausibleAddress(tstate)) return 0;
  uintptr_t frame;
  if (L.tstate_cframe >= 0) {
    const uintptr_t cframe = LoadAt<uintptr_t>(tstate + L.tstate_cframe);
    if (!PlausibleAddress(cframe)) return 0;
    frame = LoadAt<uintptr_t>(cframe + L.cframe_current);
  } else {
    frame = LoadAt<uintptr_t>(tstate + L.cframe_current);
  }
  int n = 0;
  for (int guard = 0; PlausibleAddress(frame) && n < max && guard < 4096;
       ++guard) {
    const uintptr_t previous = LoadAt<uintptr_t>(frame + L.frame_previous);
    if (LoadAt<char>(frame + L.frame_owner) == kOwnedByCStack &&
        L.frame_is_entry < 0) {
      // The frames inside it ran in one native call of the eval loop.
      if (n > 0) frames[n - 1].boundary = true;
      frame = previous;
      continue;
    }
    const uintptr_t code = LoadAt<uintptr_t>(frame + L.frame_code);
    if (IsCode(code)) {
      ScriptFrameRef& ref = frames[n++];
      ref.code = code;
      ref.where = LoadAt<uintptr_t>(frame + L.frame_instr);
      ref.check =
          LoadAt<uintptr_t>(code + L.code_filename) ^
          (LoadAt<uintptr_t>(code + L.code_qualname) << 1) ^
          static_cast<uintptr_t>(LoadAt<int>(code + L.code_firstlineno));
      ref.boundary =
          L.frame_is_entry >= 0 && LoadAt<bool>(frame + L.frame_is_entry);
    }
    frame = previous;
  }
  return n;
}

// A compact str object as UTF-8 into out[0, size), cut to fit (never
// inside a character); "?" if it is not one.
void CopyString(uintptr_t s, char* out, size_t size) {
  const PyLayout& L = *g_layout;
  ScriptText text(out, size);
  if (PlausibleAddress(s) && LoadAt<uintptr_t>(s + kObType) == g_unicode_type) {
    const uint32_t state = LoadAt<uint32_t>(s + kUnicodeState);
    const int kind = (state >> 2) & 7;
    const bool compact = (state >> 5) & 1;
    const bool ascii = (state >> 6) & 1;
    const intptr_t length = LoadAt<intptr_t>(s + kUnicodeLength);
    if (compact && length >= 0 && (kind == 1 || kind == 2 || kind == 4)) {
      const uintptr_t data = s + (ascii ? L.ascii_size : L.compact_size);
      for (intptr_t i = 0; i < length; ++i) {
        const uint32_t c = kind == 1   ? LoadAt<uint8_t>(data + i)
                           : kind == 2 ? LoadAt<uint16_t>(data + 2 * i)
                                       : LoadAt<uint32_t>(data + 4 * i);
        char utf8[4];
        size_t n;
        if (c < 0x80) {
          utf8[0] = static_cast<char>(c);
          n = 1;
        } else if (c < 0x800) {
          utf8[0] = static_cast<char>(0xc0 | (c >> 6));
          utf8[1] = static_cast<char>(0x80 | (c & 0x3f));
          n = 2;
        } else if (c < 0x10000) {
          utf8[0] = static_cast<char>(0xe0 | (c >> 12));
          utf8[1] = static_cast<char>(0x80 | ((c >> 6) & 0x3f));
          utf8[2] = static_cast<char>(0x80 | (c & 0x3f));
          n = 3;
        } else {
          utf8[0] = static_cast<char>(0xf0 | (c >> 18));
          utf8[1] = static_cast<char>(0x80 | ((c >> 12) & 0x3f));
          utf8[2] = static_cast<char>(0x80 | ((c >> 6) & 0x3f));
          utf8[3] = static_cast<char>(0x80 | (c & 0x3f));
          n = 4;
        }
        if (c == 0 || !text.AppendWhole(utf8, n)) break;
      }
      return;
    }
  }
  text.Append("?");
}

bool Describe(const ScriptFrameRef& ref, ScriptFrameText* out) {
  const PyLayout& L = *g_layout;
  if (!IsCode(ref.code)) return false;
  CopyString(LoadAt<uintptr_t>(ref.code + L.code_filename), out->file,
             sizeof(out->file));
  CopyString(LoadAt<uintptr_t>(ref.code + L.code_qualname), out->function,
             sizeof(out->function));
  // The byte offset of the instruction: before the first one (a frame just
  // made) means the first line.
  const intptr_t offset = static_cast<intptr_t>(ref.where) -
                          static_cast<intptr_t>(ref.code + L.code_adaptive);
  const int addr = offset < 0 || offset > (intptr_t{1} << 30)
                       ? -1
                       : static_cast<int>(offset);
  out->line = g_addr2line(reinterpret_cast<void*>(ref.code), addr);
  if (out->line < 0) out->line = 0;
  return true;
}

}  // namespace

bool InitPythonReader(ScriptReader* reader, std::string* why_not) {
  why_not->clear();
  // Py_Version (3.11 on) is the version the interpreter runs, as
  // PY_VERSION_HEX; before it, the version string.
  int major = 0, minor = 0;
  std::string version;
  if (auto* hex = static_cast<const unsigned long*>(
          RealDlsym(RTLD_DEFAULT, "Py_Version"))) {
    major = static_cast<int>((*hex >> 24) & 0xff);
    minor = static_cast<int>((*hex >> 16) & 0xff);
    version = std::to_string(major) + "." + std::to_string(minor) + "." +
              std::to_string((*hex >> 8) & 0xff);
  } else if (auto get = reinterpret_cast<const char* (*)()>(
                 RealDlsym(RTLD_DEFAULT, "Py_GetVersion"))) {
    const char* v = get();
    if (v != nullptr) {
      version.assign(v, strcspn(v, " "));
      std::sscanf(v, "%d.%d", &major, &minor);
    }
  }
  for (const PyLayout& layout : kLayouts) {
    if (major == 3 && minor == layout.minor) g_layout = &layout;
  }
  if (g_layout == nullptr) {
    *why_not = "Python " + (version.empty() ? std::string("?") : version) +
               ": script frames are read for Python 3.11 to 3.13; stacks "
               "stay native";
    return false;
  }
  g_this_thread_state = reinterpret_cast<void* (*)()>(
      RealDlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState"));
  g_addr2line = reinterpret_cast<int (*)(void*, int)>(
      RealDlsym(RTLD_DEFAULT, "PyCode_Addr2Line"));
  g_code_type =
      reinterpret_cast<uintptr_t>(RealDlsym(RTLD_DEFAULT, "PyCode_Type"));
  g_unicode_type =
      reinterpret_cast<uintptr_t>(RealDlsym(RTLD_DEFAULT, "PyUnicode_Type"));
  if (g_this_thread_state == nullptr || g_addr2line == nullptr ||
      g_code_type == 0 || g_unicode_type == 0) {
    *why_not = "Python " + version +
               ": the functions script frames are read with are not "
               "exported; stacks stay native";
    return false;
  }
  reader->language = "python";
  reader->walk = &Walk;
  reader->describe = &Describe;
  ExportedFunctionRange("_PyEval_EvalFrameDefault", &reader->eval_lo[0],
                        &reader->eval_hi[0]);
  return true;
}

}  // namespace leakwatch
