// Symbolizer backends: libdwfl (loaded privately with dlopen) and the
// dynamic loader (dl_iterate_phdr + dladdr).
//
// Modules are reported to libdwfl from the loader's own list
// (dl_iterate_phdr), not by parsing /proc/self/maps with
// dwfl_linux_proc_report: libdwfl's maps parser (0.188) merges any mapping of
// the same file that lies next to a loaded object into that module -- and
// libelf mmaps the very ELF files it reads, so after the first lookups a
// re-report would give some modules a wrong load address (wrong offsets,
// symbols and lines). The loader's list has no such strays and needs no
// /proc and no file descriptor.
//
// How the libdwfl backend stays off the network: libdwfl only contacts a
// debuginfod server from two of its own callbacks, dwfl_standard_find_debuginfo
// and dwfl_build_id_find_elf (elfutils 0.188, libdwfl/find-debuginfo.c and
// dwfl_build_id_find_elf.c; libdebuginfod.so is dlopen'ed lazily from there).
// This file uses neither: ELF files are opened by path with
// dwfl_linux_proc_find_elf, and separate debug info is found by
// FindDebuginfo below, which tries dwfl_build_id_find_debuginfo
// (/usr/lib/debug/.build-id/xx/yyyy.debug, a local lookup) and then the
// .gnu_debuglink name in the usual local directories. So DEBUGINFOD_URLS has
// no effect, and libdebuginfod is never loaded.

#include "report/symbolizer.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <link.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace leakwatch {
namespace {

// ---------------------------------------------------------------------------
// libdw, resolved privately. The headers give the types; nothing here links
// against libdw (decltype does not odr-use the declarations).

// Every libdw/libelf function this file calls. All are required: if any is
// missing the dladdr backend is used instead.
#define LEAKWATCH_DW_FUNCTIONS(X) \
  X(dwfl_begin)                   \
  X(dwfl_end)                     \
  X(dwfl_report_begin)            \
  X(dwfl_report_end)              \
  X(dwfl_report_module)           \
  X(dwfl_linux_proc_find_elf)     \
  X(dwfl_build_id_find_debuginfo) \
  X(dwfl_module_build_id)         \
  X(dwfl_addrmodule)              \
  X(dwfl_module_info)             \
  X(dwfl_module_addrinfo)         \
  X(dwfl_module_getsrc)           \
  X(dwfl_lineinfo)                \
  X(dwelf_elf_gnu_build_id)       \
  X(elf_begin)                    \
  X(elf_end)

// Function pointers into the privately loaded libdw.so.1 (and libelf.so.1,
// which dlsym on libdw's handle reaches as its dependency).
struct DwApi {
#define LEAKWATCH_DW_MEMBER(name) decltype(&::name) name = nullptr;
  LEAKWATCH_DW_FUNCTIONS(LEAKWATCH_DW_MEMBER)
#undef LEAKWATCH_DW_MEMBER
};

// Loads libdw.so.1 with RTLD_LOCAL, so neither it nor its dependencies enter
// the host's global symbol scope. Returns nullptr if it is absent or lacks a
// function. The library is never unloaded.
const DwApi* LoadDwApi() {
  void* handle = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return nullptr;
  static DwApi api;
  bool complete = true;
#define LEAKWATCH_DW_RESOLVE(name)                                       \
  api.name = reinterpret_cast<decltype(api.name)>(dlsym(handle, #name)); \
  complete = complete && api.name != nullptr;
  LEAKWATCH_DW_FUNCTIONS(LEAKWATCH_DW_RESOLVE)
#undef LEAKWATCH_DW_RESOLVE
  if (!complete) {
    dlclose(handle);
    return nullptr;
  }
  return &api;
}

// The process-wide libdw table, loaded on the first call (thread-safe).
// nullptr if libdw is unavailable.
const DwApi* Dw() {
  static const DwApi* const api = LoadDwApi();
  return api;
}

// ---------------------------------------------------------------------------
// Local-only separate-debug-info lookup.

// CRC-32 as used by .gnu_debuglink (reflected, polynomial 0xEDB88320; the
// same as zlib's crc32).
constexpr std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrcTable = MakeCrcTable();

// CRC-32 of the whole file behind fd (read with pread, so the file offset is
// untouched). Returns false on a read error.
bool FileCrc32(int fd, uint32_t* crc_out) {
  uint32_t crc = 0xFFFFFFFFu;
  char buf[16 * 1024];
  off_t offset = 0;
  for (;;) {
    ssize_t n = pread(fd, buf, sizeof(buf), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      crc = kCrcTable[(crc ^ static_cast<unsigned char>(buf[i])) & 0xFF] ^
            (crc >> 8);
    }
    offset += n;
  }
  *crc_out = ~crc;
  return true;
}

// Whether the file behind fd is the separate debug file of mod: the build
// IDs must match where both have one; otherwise the .gnu_debuglink CRC must.
bool IsDebugFileFor(const DwApi& dw, Dwfl_Module* mod, int fd, GElf_Word crc) {
  const unsigned char* mod_id = nullptr;
  GElf_Addr id_vaddr = 0;
  int mod_id_len = dw.dwfl_module_build_id(mod, &mod_id, &id_vaddr);
  if (mod_id_len > 0) {
    Elf* elf = dw.elf_begin(fd, ELF_C_READ_MMAP, nullptr);
    if (elf == nullptr) return false;
    const void* file_id = nullptr;
    ssize_t file_id_len = dw.dwelf_elf_gnu_build_id(elf, &file_id);
    bool match = file_id_len == mod_id_len &&
                 memcmp(file_id, mod_id, static_cast<size_t>(mod_id_len)) == 0;
    dw.elf_end(elf);
    if (file_id_len > 0) return match;
  }
  uint32_t file_crc = 0;
  return FileCrc32(fd, &file_crc) && file_crc == crc;
}

// Dwfl_Callbacks::find_debuginfo that never leaves the local file system.
// Contract (libdwfl's): returns an open fd of the debug file and sets
// *debuginfo_file_name to a malloc'ed path, or returns -1.
//
// 1. dwfl_build_id_find_debuginfo: <debuginfo_path>/.build-id/xx/yyyy.debug
//    (default path /usr/lib/debug), for the module's own debug file and for
//    a dwz alternate file (.gnu_debugaltlink) alike.
// 2. For the module's debug file (crc != 0; libdwfl passes crc 0 when it
//    asks for a dwz alternate file), the .gnu_debuglink name in the file's
//    directory, its .debug/ subdirectory and under /usr/lib/debug, each
//    candidate validated by build ID or CRC.
int FindDebuginfo(Dwfl_Module* mod, void** userdata, const char* modname,
                  Dwarf_Addr base, const char* file, const char* debuglink,
                  GElf_Word crc, char** debuginfo_file_name) {
  const DwApi* dw = Dw();
  if (dw == nullptr) return -1;
  int fd = dw->dwfl_build_id_find_debuginfo(
      mod, userdata, modname, base, file, debuglink, crc, debuginfo_file_name);
  if (fd >= 0 || debuglink == nullptr || debuglink[0] == '\0' || crc == 0) {
    return fd;
  }
  const char* main_path = file != nullptr ? file : modname;
  if (main_path == nullptr || main_path[0] != '/') return -1;
  try {  // called from C: nothing may propagate
    const char* slash = strrchr(main_path, '/');
    std::string dir(main_path, static_cast<size_t>(slash - main_path));
    const std::string candidates[] = {
        dir + "/" + debuglink,
        dir + "/.debug/" + debuglink,
        "/usr/lib/debug" + dir + "/" + debuglink,
    };
    for (const std::string& path : candidates) {
      if (path == main_path) continue;  // a debuglink naming the file itself
      int candidate = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (candidate < 0) continue;
      if (IsDebugFileFor(*dw, mod, candidate, crc)) {
        *debuginfo_file_name = strdup(path.c_str());
        return candidate;
      }
      close(candidate);
    }
  } catch (...) {
  }
  errno = 0;  // "not found" rather than the last open()'s error
  return -1;
}

// Dwfl_Callbacks::find_elf: opens the module's file by its absolute path
// (ReportModules only reports such names; dwfl_linux_proc_find_elf opens a
// regular file by path and touches nothing else).
int FindElf(Dwfl_Module* mod, void** userdata, const char* name,
            Dwarf_Addr base, char** file_name, Elf** elfp) {
  const DwApi* dw = Dw();
  if (dw == nullptr || name == nullptr || name[0] != '/') return -1;
  return dw->dwfl_linux_proc_find_elf(mod, userdata, name, base, file_name,
                                      elfp);
}

// Static: libdwfl keeps a pointer to the callbacks for the Dwfl's lifetime.
Dwfl_Callbacks kCallbacks = {
    .find_elf = FindElf,
    .find_debuginfo = FindDebuginfo,
    .section_address = nullptr,  // only for ET_REL files, never mapped
    .debuginfo_path = nullptr,   // libdwfl's default ":.debug:/usr/lib/debug"
};

// ---------------------------------------------------------------------------
// The dynamic loader's view of the process.

// The main program's path (the loader names it "").
std::string SelfExePath() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// Address range of a loaded object. low is where libdwfl expects the module
// to start (load bias + first PT_LOAD p_vaddr rounded down to its p_align),
// so that libdwfl's bias equals the loader's; it is also the "load base"
// that module offsets are relative to. high is the end of the highest
// PT_LOAD. Returns false for an object without PT_LOAD.
bool ObjectRange(const dl_phdr_info& info, uintptr_t* low, uintptr_t* high) {
  bool first = true;
  uintptr_t end = 0;
  for (int i = 0; i < info.dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info.dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    if (first) {
      uintptr_t align = ph.p_align > 1 ? ph.p_align : 1;
      *low = info.dlpi_addr + (ph.p_vaddr & ~(align - 1));
      first = false;
    }
    uintptr_t seg_end = info.dlpi_addr + ph.p_vaddr + ph.p_memsz;
    if (seg_end > end) end = seg_end;
  }
  *high = end;
  return !first;
}

// The loader's load/unload counters (glibc's dlpi_adds/dlpi_subs): when they
// are unchanged, so is the set of loaded objects.
struct LoaderGeneration {
  bool known = false;  // false: the C library does not provide them
  unsigned long long adds = 0;
  unsigned long long subs = 0;

  bool Same(const LoaderGeneration& other) const {
    return known && other.known && adds == other.adds && subs == other.subs;
  }
};

LoaderGeneration GenerationOf(const dl_phdr_info& info, size_t size) {
  LoaderGeneration gen;
  if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof(info.dlpi_subs)) {
    gen.known = true;
    gen.adds = info.dlpi_adds;
    gen.subs = info.dlpi_subs;
  }
  return gen;
}

LoaderGeneration CurrentGeneration() {
  LoaderGeneration gen;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t size, void* data) {
        *static_cast<LoaderGeneration*>(data) = GenerationOf(*info, size);
        return 1;  // the counters are the same in every entry
      },
      &gen);
  return gen;
}

// A loaded object with a file, as reported to libdwfl.
struct ObjectFile {
  std::string path;  // absolute
  uintptr_t low = 0;
  uintptr_t high = 0;
};

struct ObjectList {
  std::vector<ObjectFile> objects;
  LoaderGeneration generation;
  bool failed = false;  // out of memory while listing
};

// Lists every loaded object that has a file (not the vDSO), with the
// counters of the same moment. Runs under the loader's lock: copies only.
int ListObject(dl_phdr_info* info, size_t size, void* data) {
  auto* list = static_cast<ObjectList*>(data);
  try {
    if (list->objects.empty()) list->generation = GenerationOf(*info, size);
    ObjectFile obj;
    if (!ObjectRange(*info, &obj.low, &obj.high)) return 0;
    const char* name = info->dlpi_name != nullptr ? info->dlpi_name : "";
    if (name[0] == '\0') {
      obj.path = SelfExePath();  // the main program
    } else if (name[0] == '/') {
      obj.path = name;
    } else if (strchr(name, '/') != nullptr) {
      // dlopen("./libx.so") keeps the relative name; resolve it against the
      // current directory (wrong only if the program has since chdir'ed).
      char buf[PATH_MAX];
      if (realpath(name, buf) != nullptr) obj.path = buf;
    }
    // Anything else ("linux-vdso.so.1") has no file: the loader fallback
    // describes it.
    if (!obj.path.empty()) list->objects.push_back(std::move(obj));
  } catch (...) {
    list->failed = true;
    return 1;
  }
  return 0;
}

// A loaded object that maps an address in one of its PT_LOAD segments.
struct ObjectOf {
  uintptr_t addr = 0;  // in: the address looked for
  bool found = false;
  const char* name = "";  // the loader's name; "" for the main program
  uintptr_t base = 0;     // low, as in ObjectRange
};

int FindObjectOf(dl_phdr_info* info, size_t /*size*/, void* data) {
  auto* obj = static_cast<ObjectOf*>(data);
  bool contains = false;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (obj->addr >= start && obj->addr - start < ph.p_memsz) contains = true;
  }
  uintptr_t high = 0;
  if (!contains || !ObjectRange(*info, &obj->base, &high)) return 0;
  obj->found = true;
  obj->name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  return 1;
}

// Fills what the dynamic loader knows about addr (module, base, dynamic
// symbol) into frame, leaving fields already set alone and fields it cannot
// fill empty. The object is found with dl_iterate_phdr first: dladdr alone
// attributes addresses outside every object (the stack, ~0) to ld.so.
void ResolveWithLoader(uintptr_t addr, SymbolizedFrame* frame) {
  ObjectOf obj;
  obj.addr = addr;
  dl_iterate_phdr(FindObjectOf, &obj);
  if (!obj.found) return;
  if (frame->module.empty()) {
    frame->module = obj.name[0] != '\0' ? std::string(obj.name) : SelfExePath();
    frame->module_offset = frame->pc - obj.base;
  }
  Dl_info info;
  if (frame->function.empty() &&
      dladdr(reinterpret_cast<void*>(addr), &info) != 0 &&
      info.dli_sname != nullptr) {
    frame->function = Demangle(info.dli_sname);
  }
}

}  // namespace

// ---------------------------------------------------------------------------

struct Symbolizer::Impl {
  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    if (dwfl != nullptr) dw->dwfl_end(dwfl);
  }

  // Picks the backend on first use: loads libdw and reports the loaded
  // objects; on any failure the dladdr backend is used for good.
  void EnsureInitialized() {
    if (initialized) return;
    initialized = true;
    dw = Dw();
    if (dw == nullptr) return;
    dwfl = dw->dwfl_begin(&kCallbacks);
    if (dwfl == nullptr || !ReportModules()) {
      if (dwfl != nullptr) dw->dwfl_end(dwfl);
      dwfl = nullptr;
    }
  }

  // (Re)reports the loaded objects. dwfl_report_begin marks every module
  // for removal; those still loaded are reported again and kept together
  // with the ELF and DWARF data already read; unloaded ones are dropped.
  // Returns false if nothing could be listed.
  bool ReportModules() {
    ObjectList list;
    dl_iterate_phdr(ListObject, &list);
    if (list.failed || list.objects.empty()) return false;
    generation = list.generation;
    dw->dwfl_report_begin(dwfl);
    for (const ObjectFile& obj : list.objects) {
      dw->dwfl_report_module(dwfl, obj.path.c_str(), obj.low, obj.high);
    }
    dw->dwfl_report_end(dwfl, nullptr, nullptr);
    return true;
  }

  // Finds the module of addr, reporting the loaded objects again (once per
  // change of that set) if it is not known: it may have been dlopen'ed after
  // the last report.
  Dwfl_Module* FindModule(Dwarf_Addr addr) {
    Dwfl_Module* mod = AddrModule(addr);
    if (mod != nullptr || CurrentGeneration().Same(generation)) return mod;
    ReportModules();
    return AddrModule(addr);
  }

  // dwfl_addrmodule, but only a module whose range holds addr: libdwfl
  // (0.188) answers the last module for any address above it (the stack,
  // ~0).
  Dwfl_Module* AddrModule(Dwarf_Addr addr) {
    Dwfl_Module* mod = dw->dwfl_addrmodule(dwfl, addr);
    if (mod == nullptr) return nullptr;
    Dwarf_Addr low = 0;
    Dwarf_Addr high = 0;
    dw->dwfl_module_info(mod, nullptr, &low, &high, nullptr, nullptr, nullptr,
                         nullptr);
    return addr >= low && addr < high ? mod : nullptr;
  }

  void ResolveWithDwfl(uintptr_t addr, SymbolizedFrame* frame) {
    Dwfl_Module* mod = FindModule(addr);
    if (mod == nullptr) return;
    Dwarf_Addr low = 0;
    const char* name = dw->dwfl_module_info(mod, nullptr, &low, nullptr,
                                            nullptr, nullptr, nullptr, nullptr);
    if (name != nullptr && name[0] == '/') {
      frame->module = name;
      frame->module_offset = frame->pc - low;
    }
    GElf_Off offset = 0;
    GElf_Sym sym;
    const char* fn = dw->dwfl_module_addrinfo(mod, addr, &offset, &sym, nullptr,
                                              nullptr, nullptr);
    if (fn != nullptr && fn[0] != '\0') frame->function = Demangle(fn);
    Dwfl_Line* line = dw->dwfl_module_getsrc(mod, addr);
    if (line != nullptr) {
      int lineno = 0;
      const char* src =
          dw->dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr);
      if (src != nullptr) {
        frame->file = src;
        frame->line = lineno;
      }
    }
  }

  // Fills frame (whose pc is set) with whatever the backends know.
  void Resolve(SymbolizedFrame* frame) {
    EnsureInitialized();
    if (frame->pc < 2) return;  // pc - 1 is not an address in any object
    uintptr_t addr = frame->pc - 1;
    if (dwfl != nullptr) ResolveWithDwfl(addr, frame);
    // The loader fills what libdwfl could not (everything, without libdw).
    if (frame->module.empty() || frame->function.empty()) {
      ResolveWithLoader(addr, frame);
    }
  }

  bool initialized = false;
  const DwApi* dw = nullptr;
  Dwfl* dwfl = nullptr;           // null: the dladdr backend is in use
  LoaderGeneration generation;    // of the last ReportModules()
  SymbolizedFrame unknown_frame;  // returned if the cache cannot grow
};

Symbolizer::Symbolizer() : impl_(new (std::nothrow) Impl) {}

Symbolizer::~Symbolizer() = default;

const SymbolizedFrame& Symbolizer::Symbolize(uintptr_t pc) {
  auto it = cache_.find(pc);
  if (it != cache_.end()) return *it->second;
  try {
    auto frame = std::make_unique<SymbolizedFrame>();
    frame->pc = pc;
    if (impl_ != nullptr) {
      impl_->Resolve(frame.get());
    } else {
      if (pc >= 2) ResolveWithLoader(pc - 1, frame.get());
    }
    return *cache_.emplace(pc, std::move(frame)).first->second;
  } catch (...) {
    // Out of memory: an empty frame rather than an exception into the host.
    // (One frame shared by all such failures; its pc is the latest.)
    static SymbolizedFrame no_memory_frame;
    SymbolizedFrame& empty =
        impl_ != nullptr ? impl_->unknown_frame : no_memory_frame;
    empty.pc = pc;
    return empty;
  }
}

const char* Symbolizer::backend() const {
  if (impl_ == nullptr) return "dladdr";
  impl_->EnsureInitialized();
  return impl_->dwfl != nullptr ? "libdwfl" : "dladdr";
}

std::string Demangle(const char* name) {
  if (name == nullptr) return std::string();
  try {
    // A symbol-version suffix ("@@GLIBC_2.34", "@VER") is not part of the
    // name a person looks for; reports leave it out.
    const char* at = strchr(name, '@');
    std::string plain = at != nullptr ? std::string(name, at) : name;
    // Only "_Z" names are mangled symbols; __cxa_demangle would also turn a
    // plain C name such as "d" into a type ("double").
    if (plain.size() < 2 || plain[0] != '_' || plain[1] != 'Z') return plain;
    int status = 0;
    char* demangled =
        abi::__cxa_demangle(plain.c_str(), nullptr, nullptr, &status);
    if (status != 0 || demangled == nullptr) {
      free(demangled);
      return plain;
    }
    std::string result(demangled);
    free(demangled);
    return result;
  } catch (...) {
    return std::string();  // out of memory
  }
}

}  // namespace leakwatch
