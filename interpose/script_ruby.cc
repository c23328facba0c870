// Script frames of Ruby 3.1 (interpose/script.h).
//
// The calling thread's execution context is libruby's thread-local
// `ruby_current_ec` (the running fiber's rb_execution_context_t; null on a
// thread that never ran Ruby). Drivers call libpq and libmariadb with the GVL
// released (rb_nogvl), but the thread's own context stays as it was: its
// control frames, the innermost being the C method's, do not change until
// the call returns. The walk reads them with plain loads and calls nothing in
// libruby; the description calls one pure function, rb_iseq_line_no (the
// position table's lookup: no allocation, no lock, no Ruby code).
//
// Layouts are Ruby 3.1's for LP64 (vm_core.h: rb_execution_context_t,
// rb_control_frame_t, rb_iseq_t, rb_iseq_constant_body, the frame flags;
// internal/imemo.h; include/ruby/internal/core/rstring.h and rarray.h, with
// USE_RVARGC off as 3.1 builds by default), checked against libruby-3.1.so's
// own accessors (rb_iseq_path, rb_iseq_label, rb_iseq_line_no). Every
// pointer is checked (non-null, aligned, in the user half of the address
// space, control frames inside the context's VM stack, objects of the
// expected type) before it is followed; a frame that fails is skipped and
// the walk ends at the first control frame that fails.
//
// The TLS variable is reached at a fixed offset from the thread pointer,
// measured once at init: valid because libruby is in the static TLS block
// (loaded with the program), which init checks.
#include <dlfcn.h>

#include <cstdint>
#include <cstring>

#include "interpose/bind.h"
#include "interpose/script.h"

namespace leakwatch {
namespace {

// rb_execution_context_t: vm_stack, vm_stack_size (in VALUEs), cfp.
constexpr uintptr_t kEcVmStack = 0;
constexpr uintptr_t kEcVmStackSize = 8;
constexpr uintptr_t kEcCfp = 16;

// rb_control_frame_t: pc, sp, iseq, self, ep, block_code, __bp__, jit_return.
// The VM stack holds them at its top end, the innermost lowest.
constexpr uintptr_t kCfpSize = 8 * 8;
constexpr uintptr_t kCfpPc = 0;
constexpr uintptr_t kCfpIseq = 16;
constexpr uintptr_t kCfpEp = 32;

// ep[0] (VM_ENV_DATA_INDEX_FLAGS): a C function's or IFUNC's frame.
constexpr uintptr_t kFrameFlagCFrame = 0x80;

// RBasic flags: the type in the low 5 bits; an imemo's kind in bits 12-15.
constexpr uintptr_t kTypeMask = 0x1f;
constexpr uintptr_t kTString = 0x05;
constexpr uintptr_t kTArray = 0x07;
constexpr uintptr_t kIseqMask = 0xf01f;
constexpr uintptr_t kIseqFlags = 0x701a;  // T_IMEMO, imemo_iseq

// rb_iseq_t: flags, wrapper, body.
constexpr uintptr_t kIseqBody = 16;
// rb_iseq_constant_body: type, iseq_size, iseq_encoded, ...,
// location {pathobj, base_label, label, first_lineno}, ...,
// insns_info {body, positions, size, succ_index_table}.
constexpr uintptr_t kBodyIseqSize = 4;
constexpr uintptr_t kBodyIseqEncoded = 8;
constexpr uintptr_t kBodyPathobj = 0x40;
constexpr uintptr_t kBodyLabel = 0x50;
constexpr uintptr_t kBodyInsnsInfoSize = 0x88;
constexpr uintptr_t kBodySuccIndexTable = 0x90;

// RString: FL_USER1 = heap (len, ptr at 16, 24), else embedded (at 16, its
// length in flags bits 14-18). RArray: FL_USER1 = embedded (at 16, length in
// flags bits 15-16), else heap (len at 16, ptr at 32).
constexpr uintptr_t kFlUser1 = 0x2000;
constexpr uintptr_t kStrEmbedLenShift = 14;
constexpr uintptr_t kStrEmbedLenMask = 0x1f;
constexpr uintptr_t kAryEmbedLenShift = 15;
constexpr uintptr_t kAryEmbedLenMask = 0x3;

// Control frames looked at per walk, beyond the Ruby frames kept: C frames
// between them are few; the innermost frames are the ones that matter.
constexpr int kMaxCFramesSkipped = 64;

using LineNoFn = unsigned int (*)(uintptr_t iseq, size_t pos);

// Set once by InitRubyReader, before the reader is handed out.
intptr_t g_ec_offset = 0;  // &ruby_current_ec - thread pointer
LineNoFn g_line_no = nullptr;

uintptr_t ThreadPointer() {
#if defined(__x86_64__)
  uintptr_t tp;
  asm volatile("mov %%fs:0, %0" : "=r"(tp));
  return tp;
#else
  return reinterpret_cast<uintptr_t>(__builtin_thread_pointer());
#endif
}

uintptr_t Load(uintptr_t addr) { return LoadAt<uintptr_t>(addr); }

// The body of `iseq` if it is an instruction sequence; 0 otherwise.
uintptr_t IseqBody(uintptr_t iseq) {
  if (!PlausibleAddress(iseq) || (Load(iseq) & kIseqMask) != kIseqFlags)
    return 0;
  const uintptr_t body = Load(iseq + kIseqBody);
  return PlausibleAddress(body) ? body : 0;
}

uintptr_t FrameCheck(uintptr_t body) {
  return Load(body + kBodyPathobj) ^ Load(body + kBodyLabel);
}

int Walk(ScriptFrameRef* frames, int max) {
  int n = 0;
  const uintptr_t ec = Load(ThreadPointer() + g_ec_offset);
  if (PlausibleAddress(ec)) {
    const uintptr_t stack = Load(ec + kEcVmStack);
    const uintptr_t size = Load(ec + kEcVmStackSize);
    const uintptr_t end = stack + size * sizeof(uintptr_t);
    uintptr_t cfp = Load(ec + kEcCfp);
    if (PlausibleAddress(stack) && size < (uintptr_t{1} << 32) && end > stack &&
        PlausibleAddress(cfp) && cfp >= stack && cfp <= end) {
      // The outermost frame is the context's dummy (the main thread's is
      // the empty top-level iseq): backtraces leave it out.
      for (int skipped = 0; n < max && cfp + kCfpSize < end; cfp += kCfpSize) {
        const uintptr_t ep = Load(cfp + kCfpEp);
        if (!PlausibleAddress(ep)) break;
        const uintptr_t iseq = Load(cfp + kCfpIseq);
        const uintptr_t pc = Load(cfp + kCfpPc);
        const uintptr_t body =
            (Load(ep) & kFrameFlagCFrame) == 0 && pc != 0 ? IseqBody(iseq) : 0;
        if (body == 0) {
          if (++skipped > kMaxCFramesSkipped) break;
          continue;
        }
        ScriptFrameRef& frame = frames[n++];
        frame.code = iseq;
        frame.where = pc;
        frame.check = FrameCheck(body);
        frame.boundary = false;
      }
    }
  }
  return n;
}

// Copies the String `str` into `out` (cut to fit, NUL-terminated); false if
// `str` is not a String.
bool CopyString(uintptr_t str, char* out, size_t out_size) {
  if (!PlausibleAddress(str)) return false;
  const uintptr_t flags = Load(str);
  if ((flags & kTypeMask) != kTString) return false;
  uintptr_t ptr, len;
  if (flags & kFlUser1) {
    len = Load(str + 16);
    ptr = Load(str + 24);
    if (ptr == 0 || ptr >= (uintptr_t{1} << 47)) return false;
  } else {
    len = (flags >> kStrEmbedLenShift) & kStrEmbedLenMask;
    ptr = str + 16;
  }
  ScriptText(out, out_size).Append(reinterpret_cast<const char*>(ptr), len);
  return true;
}

// The path of a location's pathobj: a String, or an Array [path, realpath].
uintptr_t PathOf(uintptr_t pathobj) {
  if (!PlausibleAddress(pathobj)) return 0;
  const uintptr_t flags = Load(pathobj);
  if ((flags & kTypeMask) == kTString) return pathobj;
  if ((flags & kTypeMask) != kTArray) return 0;
  if (flags & kFlUser1) {
    const uintptr_t len = (flags >> kAryEmbedLenShift) & kAryEmbedLenMask;
    return len > 0 ? Load(pathobj + 16) : 0;
  }
  const uintptr_t ptr = Load(pathobj + 32);
  return Load(pathobj + 16) > 0 && PlausibleAddress(ptr) ? Load(ptr) : 0;
}

// The line `pc` is at, as Ruby's backtraces say it: that of the
// instruction before pc (pc is past the call being made), unless pc is at
// the start; 0 if unknown.
int LineOf(uintptr_t iseq, uintptr_t body, uintptr_t pc) {
  const uintptr_t encoded = Load(body + kBodyIseqEncoded);
  const uint32_t iseq_size = LoadAt<uint32_t>(body + kBodyIseqSize);
  const uint32_t entries = LoadAt<uint32_t>(body + kBodyInsnsInfoSize);
  if (!PlausibleAddress(encoded) || !PlausibleAddress(pc) || pc < encoded ||
      entries == 0 ||
      (entries > 1 && !PlausibleAddress(Load(body + kBodySuccIndexTable)))) {
    return 0;
  }
  size_t pos = (pc - encoded) / sizeof(uintptr_t);
  if (pos > 0) --pos;
  return pos < iseq_size ? static_cast<int>(g_line_no(iseq, pos)) : 0;
}

bool Describe(const ScriptFrameRef& frame, ScriptFrameText* out) {
  const uintptr_t body = IseqBody(frame.code);
  bool ok =
      body != 0 && FrameCheck(body) == frame.check &&
      CopyString(PathOf(Load(body + kBodyPathobj)), out->file,
                 sizeof(out->file)) &&
      CopyString(Load(body + kBodyLabel), out->function, sizeof(out->function));
  if (ok) out->line = LineOf(frame.code, body, frame.where);
  return ok;
}

// True if the thread-local at `addr` (the calling thread's instance) lies in
// the static TLS block: then it is at the same offset from every thread's
// thread pointer.
bool InStaticTls(uintptr_t addr, intptr_t* offset) {
  size_t static_size = 64 << 10, align = 0;
  using StaticInfoFn = void (*)(size_t*, size_t*);
  if (auto info = reinterpret_cast<StaticInfoFn>(
          RealDlsym(RTLD_DEFAULT, "_dl_get_tls_static_info"))) {
    info(&static_size, &align);
  }
  *offset = static_cast<intptr_t>(addr - ThreadPointer());
  const intptr_t bound = static_cast<intptr_t>(static_size);
  return *offset != 0 && *offset >= -bound && *offset < bound;
}

}  // namespace

bool InitRubyReader(ScriptReader* reader, std::string* why_not) {
  why_not->clear();
  const char* version =
      static_cast<const char*>(RealDlsym(RTLD_DEFAULT, "ruby_version"));
  if (version == nullptr) {
    *why_not = "Ruby: no ruby_version symbol; stacks stay native";
    return false;
  }
  if (strncmp(version, "3.1.", 4) != 0) {
    *why_not = std::string("Ruby ") +
               std::string(version, strnlen(version, 16)) +
               ": script frames are read for Ruby 3.1 only; stacks stay native";
    return false;
  }
  const uintptr_t ec_addr =
      reinterpret_cast<uintptr_t>(RealDlsym(RTLD_DEFAULT, "ruby_current_ec"));
  auto line_no =
      reinterpret_cast<LineNoFn>(RealDlsym(RTLD_DEFAULT, "rb_iseq_line_no"));
  if (ec_addr == 0 || line_no == nullptr) {
    *why_not = std::string("Ruby ") + version +
               ": ruby_current_ec or rb_iseq_line_no not exported; stacks "
               "stay native";
    return false;
  }
  intptr_t offset = 0;
  if (!InStaticTls(ec_addr, &offset)) {
    *why_not = std::string("Ruby ") + version +
               ": ruby_current_ec is not in static TLS (libruby loaded after "
               "start); stacks stay native";
    return false;
  }
  g_ec_offset = offset;
  g_line_no = line_no;

  reader->language = "ruby";
  reader->walk = &Walk;
  reader->describe = &Describe;
  // vm_exec_core and the method-call helpers are static (no .symtab): the
  // one exported function of the eval loop stands for them.
  ExportedFunctionRange("rb_vm_exec", &reader->eval_lo[0], &reader->eval_hi[0]);
  return true;
}

}  // namespace leakwatch
