// Script frames of PHP 8.2 (interpose/script.h), non-thread-safe (NTS) builds.
//
// An NTS build keeps the running script's frames in one global, the executor
// globals (`executor_globals`, exported by the executable or libphp):
// `current_execute_data`, then each frame's `prev_execute_data`. A frame
// whose function is user code (a function, a method, a closure, a file's
// top-level code, eval'd code) is a script frame; a frame of an internal
// function (pg_query, PDO::__construct, ...) is skipped: the user frame below
// it has its `opline` at the call into it.
//
// The layouts are PHP 8.2's (Zend module API 20220829, x86-64, NTS), in
// interpose/php_layout.h, read off the headers of Debian's php8.2-dev
// (/usr/include/php/20220829/Zend/) and checked against them by
// tests/unit/php_layout_check.c; the agent's build does not use those headers.
// Init accepts only a PHP whose version string says 8.2 and whose executor
// globals have the size of that layout; anything else keeps native stacks.
//
// The interpreter runs on one thread: walk reads the globals only on the
// process's main thread (tid == pid; in a forked child, the thread that
// forked), where CLI, CGI and FPM run scripts. Everything is plain loads of
// memory the interpreter owns, each pointer checked (non-null, aligned, in the
// user half of the address space) and each chain bounded.
#include <dlfcn.h>
#include <elf.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <iterator>
#include <string>

#include "interpose/bind.h"
#include "interpose/php_layout.h"
#include "interpose/script.h"
#include "tracker/elf_image.h"
#include "tracker/tracker.h"

namespace leakwatch {
namespace {

// --- PHP 8.2 layouts (interpose/php_layout.h) -------------------------------

// zend_executor_globals.
constexpr uintptr_t kExecutorGlobalsSize = LW_PHP_EG_SIZE;
constexpr uintptr_t kEgCurrentExecuteData = LW_PHP_EG_CURRENT_EXECUTE_DATA;
// zend_execute_data.
constexpr uintptr_t kExOpline = LW_PHP_EX_OPLINE;
constexpr uintptr_t kExFunc = LW_PHP_EX_FUNC;
constexpr uintptr_t kExPrevExecuteData = LW_PHP_EX_PREV_EXECUTE_DATA;
// zend_function (common, and zend_op_array).
constexpr uintptr_t kFnType = LW_PHP_FN_TYPE;
constexpr uintptr_t kFnFunctionName = LW_PHP_FN_FUNCTION_NAME;
constexpr uintptr_t kFnScope = LW_PHP_FN_SCOPE;
constexpr uintptr_t kOpArrayLast = LW_PHP_OP_ARRAY_LAST;
constexpr uintptr_t kOpArrayOpcodes = LW_PHP_OP_ARRAY_OPCODES;
constexpr uintptr_t kOpArrayFilename = LW_PHP_OP_ARRAY_FILENAME;
constexpr uint8_t kUserFunction = LW_PHP_USER_FUNCTION;
constexpr uint8_t kEvalCode = LW_PHP_EVAL_CODE;
// zend_op.
constexpr uintptr_t kOpSize = LW_PHP_OP_SIZE;
constexpr uintptr_t kOpLineno = LW_PHP_OP_LINENO;
// zend_string.
constexpr uintptr_t kStrLen = LW_PHP_STR_LEN;
constexpr uintptr_t kStrVal = LW_PHP_STR_VAL;
// zend_class_entry.
constexpr uintptr_t kCeName = LW_PHP_CE_NAME;

// SAPI_PHP_VERSION_HEADER (main/SAPI.h): "X-Powered-By: PHP/" PHP_VERSION, a
// literal in every SAPI's copy of main/SAPI.c.
constexpr char kVersionHeader[] = "X-Powered-By: PHP/";

// Frames followed from current_execute_data, user and internal together.
constexpr int kMaxHops = 4096;

uintptr_t g_executor_globals = 0;
// The thread that runs PHP: the main thread (tid == pid).
std::atomic<uint32_t> g_php_tid{0};

// --- reading -----------------------------------------------------------------

template <typename T>
T Load(uintptr_t base, uintptr_t offset) {
  return LoadAt<T>(base + offset);
}

bool IsUserCode(uintptr_t func) {
  if (!PlausibleAddress(func)) return false;
  const uint8_t type = Load<uint8_t>(func, kFnType);
  return type == kUserFunction || type == kEvalCode;
}

// `opline` if it is one of op_array's instructions, else 0.
uintptr_t OplineIn(uintptr_t op_array, uintptr_t opline) {
  const uintptr_t opcodes = Load<uintptr_t>(op_array, kOpArrayOpcodes);
  const uint32_t last = Load<uint32_t>(op_array, kOpArrayLast);
  if (!PlausibleAddress(opcodes) || opline < opcodes ||
      opline >= opcodes + uintptr_t{last} * kOpSize ||
      (opline - opcodes) % kOpSize != 0) {
    return 0;
  }
  return opline;
}

// Appends the zend_string at `str`; false if it is not a plausible pointer.
bool AppendZendString(uintptr_t str, ScriptText* text) {
  if (!PlausibleAddress(str)) return false;
  text->Append(reinterpret_cast<const char*>(str + kStrVal),
               Load<size_t>(str, kStrLen));
  return true;
}

int Walk(ScriptFrameRef* frames, int max) {
  if (max <= 0 || g_executor_globals == 0 ||
      Tracker::CurrentTid() != g_php_tid.load(std::memory_order_relaxed)) {
    return 0;
  }
  uintptr_t ex = Load<uintptr_t>(g_executor_globals, kEgCurrentExecuteData);
  int n = 0;
  for (int hops = 0; hops < kMaxHops && n < max && PlausibleAddress(ex);
       ++hops) {
    const uintptr_t func = Load<uintptr_t>(ex, kExFunc);
    if (IsUserCode(func)) {
      const uintptr_t filename = Load<uintptr_t>(func, kOpArrayFilename);
      if (PlausibleAddress(filename)) {
        ScriptFrameRef& frame = frames[n++];
        frame.code = func;
        frame.where = OplineIn(func, Load<uintptr_t>(ex, kExOpline));
        frame.check = filename;
        frame.boundary = false;
      }
    }
    ex = Load<uintptr_t>(ex, kExPrevExecuteData);
  }
  return n;
}

bool Describe(const ScriptFrameRef& frame, ScriptFrameText* out) {
  const uintptr_t func = frame.code;
  if (!IsUserCode(func) ||
      Load<uintptr_t>(func, kOpArrayFilename) != frame.check) {
    return false;
  }
  ScriptText file(out->file, sizeof(out->file));
  if (!AppendZendString(frame.check, &file)) return false;
  ScriptText function(out->function, sizeof(out->function));
  const uintptr_t name = Load<uintptr_t>(func, kFnFunctionName);
  if (name == 0) {
    // A file's top-level code, or eval'd code.
    function.Append(Load<uint8_t>(func, kFnType) == kEvalCode ? "{eval}"
                                                              : "{main}");
  } else {
    const uintptr_t scope = Load<uintptr_t>(func, kFnScope);
    if (PlausibleAddress(scope) &&
        AppendZendString(Load<uintptr_t>(scope, kCeName), &function)) {
      function.Append("::");
    }
    AppendZendString(name, &function);
  }
  out->line =
      frame.where != 0 && PlausibleAddress(frame.where, alignof(uint32_t))
          ? static_cast<int>(Load<uint32_t>(frame.where, kOpLineno))
          : 0;
  return true;
}

// --- finding the interpreter -------------------------------------------------

// The PHP version in `object`'s read-only segments (after kVersionHeader), or
// "" if there is none.
std::string FindVersion(const LoadedObject& object) {
  const size_t header_len = sizeof(kVersionHeader) - 1;
  for (size_t i = 0; i < object.phnum; ++i) {
    const ElfPhdr& ph = object.phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & (PF_R | PF_W | PF_X)) != PF_R) {
      continue;
    }
    const char* begin = reinterpret_cast<const char*>(object.bias + ph.p_vaddr);
    const char* end = begin + ph.p_filesz;
    const void* hit = memmem(begin, ph.p_filesz, kVersionHeader, header_len);
    if (hit == nullptr) continue;
    const char* p = static_cast<const char*>(hit) + header_len;
    std::string version;
    for (; p < end && version.size() < 32; ++p) {
      if (*p <= ' ' || *p >= 0x7f) break;
      version += *p;
    }
    return version;
  }
  return "";
}

}  // namespace

bool InitPhpReader(ScriptReader* reader, std::string* why_not) {
  why_not->clear();
  void* anchor = RealDlsym(RTLD_DEFAULT, "php_request_shutdown");
  LoadedObject object;
  if (anchor == nullptr || !FindLoadedObject(anchor, &object)) {
    *why_not =
        "PHP: its executable or library was not found; stacks stay native";
    return false;
  }
  const ElfImage image(object);
  std::string version = FindVersion(object);
  const std::string php =
      version.empty() ? "PHP (version unknown)" : "PHP " + version;
  if (version.compare(0, 4, "8.2.") != 0) {
    *why_not =
        php + ": script frames are read for PHP 8.2 only; stacks stay native";
    return false;
  }
  uintptr_t eg_lo = 0, eg_hi = 0;
  if (!image.LookupRange("executor_globals", &eg_lo, &eg_hi)) {
    *why_not =
        php + (image.Lookup("executor_globals_offset") != nullptr
                   ? ": a thread-safe (ZTS) build; script frames are read for "
                     "NTS builds only; stacks stay native"
                   : ": executor_globals not found; stacks stay native");
    return false;
  }
  if (eg_hi - eg_lo != kExecutorGlobalsSize) {
    *why_not = php + ": executor_globals is " + std::to_string(eg_hi - eg_lo) +
               " bytes, not the " + std::to_string(kExecutorGlobalsSize) +
               " of the layout read; stacks stay native";
    return false;
  }
  // The VM: execute_ex runs user code (the hybrid VM's handlers are inside
  // it), zend_execute enters it, execute_internal calls internal functions
  // when an extension hooks zend_execute_internal.
  ScriptReader php_reader;
  static constexpr const char* kEvalFunctions[] = {"execute_ex", "zend_execute",
                                                   "execute_internal"};
  static_assert(std::size(kEvalFunctions) <= kMaxEvalRanges);
  for (size_t i = 0; i < std::size(kEvalFunctions); ++i) {
    ExportedFunctionRange(kEvalFunctions[i], &php_reader.eval_lo[i],
                          &php_reader.eval_hi[i]);
  }
  if (php_reader.eval_hi[0] == 0) {
    *why_not = php + ": execute_ex not found; stacks stay native";
    return false;
  }
  g_executor_globals = eg_lo;
  g_php_tid.store(static_cast<uint32_t>(getpid()), std::memory_order_relaxed);
  pthread_atfork(nullptr, nullptr, [] {
    g_php_tid.store(static_cast<uint32_t>(getpid()), std::memory_order_relaxed);
  });
  php_reader.language = "php";
  php_reader.walk = &Walk;
  php_reader.describe = &Describe;
  *reader = php_reader;
  return true;
}

}  // namespace leakwatch
