// Script frames of Perl 5.36 (interpose/script.h): the calling thread's Perl
// frames as caller() and Carp see them.
//
// Debian's perl is built with ithreads (MULTIPLICITY): a thread's interpreter
// is pthread_getspecific(PL_thr_key) and the interpreter's variables are
// fields of struct interpreter. A walk reads:
//   - PL_curcop, the statement running now (cop_file, cop_line);
//   - PL_curstackinfo, the stacks of contexts: si_cxstack[si_cxix] down to
//     0, then si_prev (the stacks call_sv, sort, magic and DESTROY push)
//     until the PERLSI_MAIN stack;
//   - the CXt_SUB, CXt_FORMAT and CXt_EVAL contexts among them (those
//     dopoptosub_at stops at: try blocks and the faked re-entries of
//     (?{ }) skipped), innermost first. Each separates two frames: the frame
//     inside it runs in its sub (blk_sub.cv) or eval, and blk_oldcop is the
//     statement that entered it, the next frame out.
// The outermost frame is the main program's ("main"). Calls to &DB::sub made
// by the debugger are hidden, as caller() hides them.
//
// A frame is {code: the COP, where: its line, check: what runs the frame: the
// CV, or a tag for an eval, a require and the main program}; it is a boundary
// if what runs it was entered from C (call_sv, MULTICALL: a null retop), as
// the main program is. describe names a sub as cv_name() does: "Stash::name"
// from the CV's GV (its effective GV, the GV's stash's HvNAME), or from the
// CV's own name HEK (CvNAMED, with CvSTASH); a lexical sub by its name alone.
//
// Layouts: Perl 5.36 on x86-64 with USE_ITHREADS and MULTIPLICITY, in
// interpose/perl_layout.h, read off the headers in
// /usr/lib/x86_64-linux-gnu/perl/5.36/CORE and checked against them by
// tests/unit/perl_layout_check.c. InitPerlReader checks the running perl's
// version (PL_revision, PL_version) and its sizeof(struct interpreter)
// (PL_interp_size) before it trusts them.
//
// walk and describe never call into perl: they load memory of the calling
// thread's own interpreter, which is not changing while its thread is in a
// hook; each pointer is checked (non-null, canonical, aligned) before it is
// followed, an SV's type before its body is read, and every loop is bounded.
// No allocation, no lock.
#include <dlfcn.h>
#include <pthread.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "interpose/bind.h"
#include "interpose/perl_layout.h"
#include "interpose/script.h"

namespace leakwatch {
namespace {

// --- Perl 5.36's layouts (interpose/perl_layout.h) ---------------------------

// struct interpreter; its size is libperl's PL_interp_size.
constexpr uint16_t kInterpreterSize = LW_PERL_INTERP_SIZE;
constexpr uintptr_t kInterpCurcop = LW_PERL_INTERP_CURCOP;
constexpr uintptr_t kInterpCurstackinfo = LW_PERL_INTERP_CURSTACKINFO;
constexpr uintptr_t kInterpDbsub = LW_PERL_INTERP_DBSUB;

// PERL_SI.
constexpr uintptr_t kSiCxstack = LW_PERL_SI_CXSTACK;
constexpr uintptr_t kSiPrev = LW_PERL_SI_PREV;
constexpr uintptr_t kSiCxix = LW_PERL_SI_CXIX;
constexpr uintptr_t kSiCxmax = LW_PERL_SI_CXMAX;
constexpr uintptr_t kSiType = LW_PERL_SI_TYPE;
constexpr int32_t kPerlsiMain = LW_PERL_SI_MAIN;

// PERL_CONTEXT.
constexpr uintptr_t kCxSize = LW_PERL_CX_SIZE;
constexpr uintptr_t kCxType = LW_PERL_CX_TYPE;
constexpr uintptr_t kCxU16 = LW_PERL_CX_U16;
constexpr uintptr_t kCxOldcop = LW_PERL_CX_OLDCOP;
constexpr uintptr_t kCxRetop = LW_PERL_CX_RETOP;
constexpr uintptr_t kCxSubCv = LW_PERL_CX_SUB_CV;
constexpr uintptr_t kCxEvalCv = LW_PERL_CX_EVAL_CV;
constexpr uint8_t kCxTypeMask = LW_PERL_CXTYPEMASK;
constexpr uint8_t kCxtSub = LW_PERL_CXT_SUB;
constexpr uint8_t kCxtFormat = LW_PERL_CXT_FORMAT;
constexpr uint8_t kCxtEval = LW_PERL_CXT_EVAL;
constexpr uint8_t kCxpSubReFake = LW_PERL_CXP_SUB_RE_FAKE;
constexpr uint8_t kCxpTry = LW_PERL_CXP_TRY;
constexpr unsigned kCxOldOpTypeShift = LW_PERL_CX_OLD_OP_TYPE_SHIFT;
constexpr unsigned kOpRequire = LW_PERL_OP_REQUIRE;
constexpr unsigned kOpDofile = LW_PERL_OP_DOFILE;

// COP.
constexpr uintptr_t kCopLine = LW_PERL_COP_LINE;
constexpr uintptr_t kCopFile = LW_PERL_COP_FILE;

// struct sv, the head of every SV, AV, HV, CV, GV; the SV types and flags.
constexpr uintptr_t kSvAny = LW_PERL_SV_ANY;
constexpr uintptr_t kSvFlags = LW_PERL_SV_FLAGS;
constexpr uintptr_t kSvU = LW_PERL_SV_U;
constexpr uint32_t kSvTypeMask = LW_PERL_SVTYPEMASK;
constexpr uint32_t kSvtPvgv = LW_PERL_SVT_PVGV;
constexpr uint32_t kSvtPvhv = LW_PERL_SVT_PVHV;
constexpr uint32_t kSvtPvcv = LW_PERL_SVT_PVCV;
constexpr uint32_t kSvtPvfm = LW_PERL_SVT_PVFM;
constexpr uint32_t kSvfOok = LW_PERL_SVF_OOK;
constexpr uint32_t kSvpPok = LW_PERL_SVP_POK;
constexpr uint32_t kSvpgvGp = LW_PERL_SVPGV_GP;

// XPVCV, the body of a CV.
constexpr uintptr_t kCvStash = LW_PERL_CV_STASH;
constexpr uintptr_t kCvGvU = LW_PERL_CV_GV_U;
constexpr uintptr_t kCvFlags = LW_PERL_CV_FLAGS;
constexpr uint32_t kCvfNamed = LW_PERL_CVF_NAMED;
constexpr uint32_t kCvfLexical = LW_PERL_CVF_LEXICAL;

// XPVGV, the body of a GV, and its GP.
constexpr uintptr_t kGvNameHek = LW_PERL_GV_NAME_HEK;
constexpr uintptr_t kGvStash = LW_PERL_GV_STASH;
constexpr uintptr_t kGpCv = LW_PERL_GP_CV;
constexpr uintptr_t kGpEgv = LW_PERL_GP_EGV;

// struct xpvhv_with_aux, the body of an HV with SVf_OOK.
constexpr uintptr_t kHvAux = LW_PERL_HV_AUX;
constexpr uintptr_t kAuxName = LW_PERL_AUX_NAME;
constexpr uintptr_t kAuxNameCount = LW_PERL_AUX_NAME_COUNT;

// HEK.
constexpr uintptr_t kHekLen = LW_PERL_HEK_LEN;
constexpr uintptr_t kHekKey = LW_PERL_HEK_KEY;

// --- reading ----------------------------------------------------------------

// What runs a frame, in ScriptFrameRef::check: the CV (8-byte aligned), or
// one of these tags in its low bits.
constexpr uintptr_t kTagMask = 7;
constexpr uintptr_t kTagEval = 1;     // eval STRING or eval BLOCK
constexpr uintptr_t kTagRequire = 2;  // require, use, do FILE
constexpr uintptr_t kTagMain = 3;     // the main program (pointer part 0)

constexpr int kMaxContextsRead = 4096;  // per walk, all stacks together
constexpr int32_t kMaxContextIndex = 1 << 22;
constexpr int kMaxStashNames = 1 << 16;

uintptr_t LoadPointer(uintptr_t address) { return LoadAt<uintptr_t>(address); }

// The type of the SV at `sv` (SVTYPEMASK if it is not one).
uint32_t SvType(uintptr_t sv) {
  if (!PlausibleAddress(sv)) return kSvTypeMask;
  return LoadAt<uint32_t>(sv + kSvFlags) & kSvTypeMask;
}

// The body of the SV at `sv` if it has type `type`, else 0.
uintptr_t BodyOf(uintptr_t sv, uint32_t type) {
  if (SvType(sv) != type) return 0;
  const uintptr_t body = LoadPointer(sv + kSvAny);
  return PlausibleAddress(body) ? body : 0;
}

// libperl's globals, found by InitPerlReader.
const pthread_key_t* g_thr_key = nullptr;  // PL_thr_key
void* const* g_curinterp = nullptr;        // PL_curinterp

// The calling thread's interpreter, or 0. PL_curinterp is set (by the first
// perl_alloc) before PL_thr_key is created: until then the key means nothing.
uintptr_t CurrentInterpreter() {
  if (__atomic_load_n(g_curinterp, __ATOMIC_ACQUIRE) == nullptr) return 0;
  const uintptr_t interp =
      reinterpret_cast<uintptr_t>(pthread_getspecific(*g_thr_key));
  return PlausibleAddress(interp) ? interp : 0;
}

// GvCV(PL_DBsub): &DB::sub under the debugger, else 0.
uintptr_t DbSubCv(uintptr_t interp) {
  const uintptr_t gv = LoadPointer(interp + kInterpDbsub);
  if (gv == 0 || SvType(gv) != kSvtPvgv) return 0;
  if ((LoadAt<uint32_t>(gv + kSvFlags) & (kSvpPok | kSvpgvGp)) != kSvpgvGp) {
    return 0;
  }
  const uintptr_t gp = LoadPointer(gv + kSvU);
  return PlausibleAddress(gp) ? LoadPointer(gp + kGpCv) : 0;
}

// A walk's position among the contexts: the next one to look at is
// cxstack[ix] of stackinfo `si`, going outward.
struct Cursor {
  uintptr_t si = 0;
  uintptr_t cxstack = 0;
  int32_t ix = -1;
  int budget = kMaxContextsRead;
};

bool EnterStack(uintptr_t si, Cursor* cursor) {
  if (!PlausibleAddress(si)) return false;
  const uintptr_t cxstack = LoadPointer(si + kSiCxstack);
  const int32_t ix = LoadAt<int32_t>(si + kSiCxix);
  const int32_t max = LoadAt<int32_t>(si + kSiCxmax);
  if (ix < -1 || ix > max || max >= kMaxContextIndex) return false;
  if (ix >= 0 && !PlausibleAddress(cxstack)) return false;
  cursor->si = si;
  cursor->cxstack = cxstack;
  cursor->ix = ix;
  return true;
}

// A sub, format or eval context: it separates two frames.
struct CallContext {
  uintptr_t oldcop = 0;  // the statement that entered it
  uintptr_t runs = 0;    // what runs inside it (ScriptFrameRef::check)
  uintptr_t cv = 0;      // its CV (0 for an eval)
  bool from_c = false;   // entered from C (call_sv, MULTICALL): retop null
};

// The next sub, format or eval context outward (caller_cx's order); false
// past the outermost.
bool NextCallContext(Cursor* cursor, CallContext* out) {
  while (cursor->budget-- > 0) {
    if (cursor->ix < 0) {
      if (LoadAt<int32_t>(cursor->si + kSiType) == kPerlsiMain) return false;
      if (!EnterStack(LoadPointer(cursor->si + kSiPrev), cursor)) return false;
      continue;
    }
    const uintptr_t cx =
        cursor->cxstack + static_cast<uintptr_t>(cursor->ix) * kCxSize;
    --cursor->ix;
    const uint8_t type = LoadAt<uint8_t>(cx + kCxType);
    switch (type & kCxTypeMask) {
      case kCxtSub:
        if (type & kCxpSubReFake) continue;
        [[fallthrough]];
      case kCxtFormat: {
        const uintptr_t cv = LoadPointer(cx + kCxSubCv);
        out->cv = cv;
        out->runs = PlausibleAddress(cv) ? cv : 0;
        break;
      }
      case kCxtEval: {
        if (type & kCxpTry) continue;
        const unsigned op = LoadAt<uint16_t>(cx + kCxU16) >> kCxOldOpTypeShift;
        const uintptr_t cv = LoadPointer(cx + kCxEvalCv);
        out->cv = 0;
        out->runs =
            (PlausibleAddress(cv) ? cv : 0) |
            (op == kOpRequire || op == kOpDofile ? kTagRequire : kTagEval);
        break;
      }
      default:
        continue;
    }
    out->oldcop = LoadPointer(cx + kCxOldcop);
    out->from_c = LoadPointer(cx + kCxRetop) == 0;
    return true;
  }
  return false;
}

int Walk(ScriptFrameRef* frames, int max) {
  if (max <= 0) return 0;
  const uintptr_t interp = CurrentInterpreter();
  if (interp == 0) return 0;
  uintptr_t cop = LoadPointer(interp + kInterpCurcop);
  Cursor cursor;
  if (!PlausibleAddress(cop) ||
      !EnterStack(LoadPointer(interp + kInterpCurstackinfo), &cursor)) {
    return 0;
  }
  const uintptr_t db_sub = DbSubCv(interp);
  int n = 0;
  while (n < max) {
    CallContext context;
    const bool found = NextCallContext(&cursor, &context);
    if (found && db_sub != 0 && context.cv == db_sub) {
      // The sub inside was called by &DB::sub: its caller is DB::sub's.
      if (PlausibleAddress(context.oldcop)) cop = context.oldcop;
      if (context.from_c && n > 0) frames[n - 1].boundary = true;
      continue;
    }
    ScriptFrameRef& frame = frames[n++];
    frame.code = cop;
    frame.where = LoadAt<uint32_t>(cop + kCopLine);
    frame.check = found ? context.runs : kTagMain;
    // A sub or eval entered from C returns to C: its frame is the outermost
    // one a native call of the runops loop runs; so is the main program's.
    frame.boundary = found ? context.from_c : true;
    if (!found || !PlausibleAddress(context.oldcop)) break;
    cop = context.oldcop;
  }
  return n;
}

// --- describing -------------------------------------------------------------

// Appends a HEK's key to `text`; false (nothing appended) if `hek` is not
// a readable one.
bool AppendHek(uintptr_t hek, ScriptText* text) {
  if (!PlausibleAddress(hek)) return false;
  const int32_t length = LoadAt<int32_t>(hek + kHekLen);
  if (length < 0 || length > (1 << 20)) return false;
  text->Append(reinterpret_cast<const char*>(hek + kHekKey),
               static_cast<size_t>(length));
  return true;
}

// HvNAME_HEK(stash), or 0.
uintptr_t StashNameHek(uintptr_t stash) {
  const uintptr_t body = BodyOf(stash, kSvtPvhv);
  if (body == 0 || !(LoadAt<uint32_t>(stash + kSvFlags) & kSvfOok)) return 0;
  const uintptr_t name = LoadPointer(body + kHvAux + kAuxName);
  if (!PlausibleAddress(name)) return 0;
  const int32_t count = LoadAt<int32_t>(body + kHvAux + kAuxNameCount);
  if (count == 0) return name;
  if (count > kMaxStashNames || count < -kMaxStashNames) return 0;
  return LoadPointer(name);  // the first of the names
}

// "Stash::" for a sub's stash, "__ANON__::" without one (gv_fullname4).
void AppendPackage(uintptr_t stash, ScriptText* text) {
  if (!AppendHek(StashNameHek(stash), text)) text->Append("__ANON__");
  text->Append("::");
}

// cv_name(cv): false if the CV or its name cannot be read.
bool AppendSubName(uintptr_t cv, ScriptText* text) {
  const uint32_t type = SvType(cv);
  if (type != kSvtPvcv && type != kSvtPvfm) return false;
  const uintptr_t body = BodyOf(cv, type);
  if (body == 0) return false;
  const uint32_t flags = LoadAt<uint32_t>(body + kCvFlags);
  const uintptr_t gv_or_hek = LoadPointer(body + kCvGvU);
  if (flags & kCvfNamed) {
    if (!(flags & kCvfLexical)) {
      AppendPackage(LoadPointer(body + kCvStash), text);
    }
    return AppendHek(gv_or_hek, text);
  }
  uintptr_t gv_body = BodyOf(gv_or_hek, kSvtPvgv);
  if (gv_body == 0) return false;
  // GvEGVx: the effective GV, if this one has a GP that names one.
  if ((LoadAt<uint32_t>(gv_or_hek + kSvFlags) & (kSvpPok | kSvpgvGp)) ==
      kSvpgvGp) {
    const uintptr_t gp = LoadPointer(gv_or_hek + kSvU);
    const uintptr_t egv = PlausibleAddress(gp) ? LoadPointer(gp + kGpEgv) : 0;
    if (egv != 0) {
      if (const uintptr_t egv_body = BodyOf(egv, kSvtPvgv)) gv_body = egv_body;
    }
  }
  if (!(flags & kCvfLexical)) {
    AppendPackage(LoadPointer(gv_body + kGvStash), text);
  }
  return AppendHek(LoadPointer(gv_body + kGvNameHek), text);
}

bool Describe(const ScriptFrameRef& frame, ScriptFrameText* out) {
  if (!PlausibleAddress(frame.code)) return false;
  ScriptText file(out->file, sizeof out->file);
  const uintptr_t name = LoadPointer(frame.code + kCopFile);
  if (name != 0 && PlausibleAddress(name, 1)) {
    file.Append(reinterpret_cast<const char*>(name));
  } else {
    file.Append("?");
  }
  out->line = frame.where <= 0x7fffffff ? static_cast<int>(frame.where) : 0;

  ScriptText function(out->function, sizeof out->function);
  const uintptr_t runs = frame.check;
  switch (runs & kTagMask) {
    case kTagMain:
      function.Append("main");
      break;
    case kTagEval:
      function.Append("(eval)");
      break;
    case kTagRequire:
      function.Append("(require)");
      break;
    default:
      if (runs == 0 || !AppendSubName(runs, &function)) {
        function.Clear();
        function.Append("(unknown)");
      }
  }
  return true;
}

}  // namespace

bool InitPerlReader(ScriptReader* reader, std::string* why_not) {
  const char* const kOnly =
      ": script frames are read for Perl 5.36 only; stacks stay native";
  const auto* revision =
      static_cast<const uint8_t*>(RealDlsym(RTLD_DEFAULT, "PL_revision"));
  const auto* version =
      static_cast<const uint8_t*>(RealDlsym(RTLD_DEFAULT, "PL_version"));
  const auto* subversion =
      static_cast<const uint8_t*>(RealDlsym(RTLD_DEFAULT, "PL_subversion"));
  if (revision == nullptr || version == nullptr || subversion == nullptr) {
    *why_not = std::string("Perl of unknown version (no PL_version)") + kOnly;
    return false;
  }
  const std::string perl = "Perl " + std::to_string(*revision) + "." +
                           std::to_string(*version) + "." +
                           std::to_string(*subversion);
  if (*revision != LW_PERL_REVISION || *version != LW_PERL_VERSION) {
    *why_not = perl + kOnly;
    return false;
  }
  g_thr_key =
      static_cast<const pthread_key_t*>(RealDlsym(RTLD_DEFAULT, "PL_thr_key"));
  g_curinterp =
      static_cast<void* const*>(RealDlsym(RTLD_DEFAULT, "PL_curinterp"));
  if (g_thr_key == nullptr || g_curinterp == nullptr) {
    *why_not = perl +
               " without ithreads (no PL_thr_key): script frames are read "
               "for a threaded Perl 5.36 only; stacks stay native";
    return false;
  }
  const auto* interp_size =
      static_cast<const uint16_t*>(RealDlsym(RTLD_DEFAULT, "PL_interp_size"));
  if (interp_size == nullptr || *interp_size != kInterpreterSize) {
    *why_not = perl + ": an interpreter of " +
               (interp_size ? std::to_string(*interp_size) : "unknown") +
               " bytes, not " + std::to_string(kInterpreterSize) +
               " (another build's layout): script frames are read for "
               "Debian's Perl 5.36 only; stacks stay native";
    return false;
  }
  int ranges = 0;
  for (const char* name : {"Perl_runops_standard", "Perl_runops_debug"}) {
    uintptr_t lo = 0, hi = 0;
    if (ExportedFunctionRange(name, &lo, &hi)) {
      reader->eval_lo[ranges] = lo;
      reader->eval_hi[ranges] = hi;
      ++ranges;
    }
  }
  if (ranges == 0) {
    *why_not = perl +
               ": Perl_runops_standard not found: script frames have no "
               "place in the stack; stacks stay native";
    return false;
  }
  reader->language = "perl";
  reader->walk = &Walk;
  reader->describe = &Describe;
  why_not->clear();
  return true;
}

}  // namespace leakwatch
