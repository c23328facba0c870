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
#include <dwarf.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tracker/script_stack.h"

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
  X(dwfl_module_addrdie)          \
  X(dwarf_child)                  \
  X(dwarf_siblingof)              \
  X(dwarf_dieoffset)              \
  X(dwarf_ranges)                 \
  X(dwarf_tag)                    \
  X(dwarf_attr)                   \
  X(dwarf_attr_integrate)         \
  X(dwarf_formstring)             \
  X(dwarf_formudata)              \
  X(dwarf_formref_die)            \
  X(dwarf_srclang)                \
  X(dwarf_diecu)                  \
  X(dwarf_getsrcfiles)            \
  X(dwarf_filesrc)                \
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

// ---------------------------------------------------------------------------
// Inlined calls.

bool IsCxx(int lang) {
  return lang == DW_LANG_C_plus_plus || lang == DW_LANG_C_plus_plus_03 ||
         lang == DW_LANG_C_plus_plus_11 || lang == DW_LANG_C_plus_plus_14;
}

// The functions with code of one compilation unit, indexed in one walk of
// its DIEs, so that the inlined calls at a pc are found without walking the
// unit for every pc. (libdw's dwarf_getscopes, which eu-addr2line -i uses,
// walks the unit on every call, and dwarf_getscopes_die walks it again:
// about 2 ms a pc in a C++ unit that includes the standard headers, 40 times
// the rest of a frame's symbolization.)
class CuIndex {
 public:
  // Walks the unit of cudie (not thread-safe; libdw's data must outlive
  // this index: it keeps DIE handles).
  CuIndex(const DwApi& dw, Dwarf_Die* cudie);

  // The subprograms, inlined subroutines and entry points whose code
  // contains pc (unit-relative address), innermost first.
  void Lookup(Dwarf_Addr pc, std::vector<Dwarf_Die>* chain) const;

  // In a C++ unit, "ns::Class::" for a function DIE of this unit declared in
  // namespace ns, class Class; "" if none or not known.
  std::string Qualifier(Dwarf_Die* decl) const;

 private:
  struct Scope {
    Dwarf_Die die;
    int parent = -1;  // the scope it is nested in (through lexical blocks)
    uint32_t first_range = 0;
    uint32_t num_ranges = 0;
    std::vector<int> children;
  };
  struct Range {
    Dwarf_Addr low = 0;
    Dwarf_Addr high = 0;  // exclusive
    int scope = -1;
  };
  struct Path {  // a namespace or class
    int parent = -1;
    std::string name;
  };

  bool Contains(const Scope& scope, Dwarf_Addr pc) const;
  // Adds the function DIE `die` (in scope `parent`, -1 = none) as a scope
  // with its address ranges; false (and nothing added) if it has no code.
  // Sets *scope to the new scope.
  bool AddScope(Dwarf_Die die, int parent, int* scope);
  // Adds a namespace or class DIE to the paths; returns its path index.
  int AddPath(Dwarf_Die die, int parent);

  const DwApi& dw_;
  Dwarf_CU* cu_ = nullptr;
  std::vector<Scope> scopes_;
  std::vector<Range> ranges_;  // of every scope, by scope
  std::vector<Range> top_;     // of the outermost scopes, by low
  std::vector<Path> paths_;
  // C++ only: the path of each function DIE (with or without code), by DIE
  // offset (the walk is in offset order).
  std::vector<std::pair<Dwarf_Off, int>> path_of_;
};

CuIndex::CuIndex(const DwApi& dw, Dwarf_Die* cudie) : dw_(dw), cu_(cudie->cu) {
  const bool cxx = IsCxx(dw.dwarf_srclang(cudie));
  // Depth-first, in DIE order, without recursion: each entry is a DIE still
  // to visit with the scope and path it is in.
  struct Pending {
    Dwarf_Die die;
    int scope;
    int path;
  };
  std::vector<Pending> stack;
  Dwarf_Die first;
  if (dw.dwarf_child(cudie, &first) != 0) return;
  stack.push_back({first, -1, -1});
  while (!stack.empty()) {
    Pending item = stack.back();
    stack.pop_back();
    Dwarf_Die sibling;
    if (dw.dwarf_siblingof(&item.die, &sibling) == 0) {
      stack.push_back({sibling, item.scope, item.path});
    }
    int scope = item.scope;
    int path = item.path;
    bool descend = false;
    switch (dw.dwarf_tag(&item.die)) {
      case DW_TAG_subprogram:
      case DW_TAG_entry_point:
      case DW_TAG_inlined_subroutine:
        if (cxx && path >= 0) {
          path_of_.emplace_back(dw.dwarf_dieoffset(&item.die), path);
        }
        descend = AddScope(item.die, item.scope, &scope);
        break;
      case DW_TAG_lexical_block:
        descend = true;
        break;
      case DW_TAG_namespace:
      case DW_TAG_class_type:
      case DW_TAG_structure_type:
      case DW_TAG_union_type:
        if (!cxx) break;  // no functions inside in C
        path = AddPath(item.die, path);
        descend = true;
        break;
      default:
        break;
    }
    Dwarf_Die child;
    if (descend && dw.dwarf_child(&item.die, &child) == 0) {
      stack.push_back({child, scope, path});
    }
  }
  std::sort(top_.begin(), top_.end(),
            [](const Range& a, const Range& b) { return a.low < b.low; });
  std::sort(path_of_.begin(), path_of_.end());
}

bool CuIndex::AddScope(Dwarf_Die die, int parent, int* scope) {
  Scope s;
  s.die = die;
  s.parent = parent;
  s.first_range = static_cast<uint32_t>(ranges_.size());
  Dwarf_Addr base = 0;
  Dwarf_Addr low = 0;
  Dwarf_Addr high = 0;
  int index = static_cast<int>(scopes_.size());
  for (ptrdiff_t offset = 0;
       (offset = dw_.dwarf_ranges(&die, offset, &base, &low, &high)) > 0;) {
    if (low < high) ranges_.push_back({low, high, index});
  }
  s.num_ranges = static_cast<uint32_t>(ranges_.size()) - s.first_range;
  if (s.num_ranges == 0) return false;  // no code: a declaration or abstract
  if (s.parent >= 0) {
    scopes_[s.parent].children.push_back(index);
  } else {
    for (uint32_t i = 0; i < s.num_ranges; ++i) {
      top_.push_back(ranges_[s.first_range + i]);
    }
  }
  scopes_.push_back(std::move(s));
  *scope = index;
  return true;
}

int CuIndex::AddPath(Dwarf_Die die, int parent) {
  Dwarf_Attribute attr;
  const char* name =
      dw_.dwarf_formstring(dw_.dwarf_attr(&die, DW_AT_name, &attr));
  bool ns = dw_.dwarf_tag(&die) == DW_TAG_namespace;
  paths_.push_back({parent, name != nullptr ? name
                            : ns            ? "(anonymous namespace)"
                                            : "{unnamed type}"});
  return static_cast<int>(paths_.size()) - 1;
}

bool CuIndex::Contains(const Scope& scope, Dwarf_Addr pc) const {
  for (uint32_t i = 0; i < scope.num_ranges; ++i) {
    const Range& r = ranges_[scope.first_range + i];
    if (pc >= r.low && pc < r.high) return true;
  }
  return false;
}

void CuIndex::Lookup(Dwarf_Addr pc, std::vector<Dwarf_Die>* chain) const {
  // The outermost function: the last range starting at or below pc (the
  // functions of a unit do not overlap).
  auto it = std::upper_bound(
      top_.begin(), top_.end(), pc,
      [](Dwarf_Addr value, const Range& r) { return value < r.low; });
  if (it == top_.begin() || pc >= std::prev(it)->high) return;
  int scope = std::prev(it)->scope;
  // Down through the nested scopes that contain pc.
  for (bool deeper = true; deeper;) {
    deeper = false;
    for (int child : scopes_[scope].children) {
      if (Contains(scopes_[child], pc)) {
        scope = child;
        deeper = true;
        break;
      }
    }
  }
  for (; scope >= 0; scope = scopes_[scope].parent) {
    chain->push_back(scopes_[scope].die);
  }
}

std::string CuIndex::Qualifier(Dwarf_Die* decl) const {
  if (decl->cu != cu_ || path_of_.empty()) return std::string();
  Dwarf_Off offset = dw_.dwarf_dieoffset(decl);
  auto it = std::lower_bound(path_of_.begin(), path_of_.end(),
                             std::make_pair(offset, -1));
  if (it == path_of_.end() || it->first != offset) return std::string();
  std::string qualifier;
  for (int p = it->second; p >= 0; p = paths_[p].parent) {
    qualifier = paths_[p].name + "::" + qualifier;
  }
  return qualifier;
}

// What SymbolizeInlined returns when the cache cannot grow: one frame with
// only the pc (of the latest such failure), shared by all Symbolizers. Made
// by the first Symbolizer's constructor, before memory runs out if at all.
std::vector<SymbolizedFrame>& NoMemoryFrames() {
  static std::vector<SymbolizedFrame> frames = [] {
    std::vector<SymbolizedFrame> v;
    try {
      v.emplace_back();
    } catch (...) {
    }
    return v;
  }();
  return frames;
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
    cu_indexes.clear();  // they keep DIEs of modules that may go now
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

  // Fills frame with what libdwfl knows of addr: module and offset, the
  // .symtab name of the function containing addr, the line table's file:line.
  // Returns the module, or nullptr if addr is in none.
  Dwfl_Module* ResolveWithDwfl(uintptr_t addr, SymbolizedFrame* frame) {
    Dwfl_Module* mod = FindModule(addr);
    if (mod == nullptr) return nullptr;
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
    return mod;
  }

  // The name of a subprogram or inlined subroutine DIE of the unit indexed
  // by cu: its (or its abstract origin's / specification's) linkage name
  // demangled, as .symtab would give it; else (GCC gives functions with
  // internal linkage none) its plain name, qualified with its namespaces
  // and classes in C++ ("(anonymous namespace)::Helper", without the
  // parameter types a demangled name has); "" if it has no name.
  std::string DieName(Dwarf_Die* die, const CuIndex& cu) {
    Dwarf_Attribute attr;
    const char* linkage = dw->dwarf_formstring(
        dw->dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
    if (linkage == nullptr) {
      linkage = dw->dwarf_formstring(
          dw->dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
    }
    if (linkage != nullptr && linkage[0] != '\0') return Demangle(linkage);
    const char* name =
        dw->dwarf_formstring(dw->dwarf_attr_integrate(die, DW_AT_name, &attr));
    if (name == nullptr) return std::string();
    // The declaration: through DW_AT_abstract_origin (an inlined or
    // out-of-line instance) and DW_AT_specification (a definition outside
    // its class).
    Dwarf_Die decl = *die;
    for (int hop = 0; hop < 4; ++hop) {
      Dwarf_Die next;
      if ((dw->dwarf_attr(&decl, DW_AT_abstract_origin, &attr) == nullptr &&
           dw->dwarf_attr(&decl, DW_AT_specification, &attr) == nullptr) ||
          dw->dwarf_formref_die(&attr, &next) == nullptr) {
        break;
      }
      decl = next;
    }
    return cu.Qualifier(&decl) + name;
  }

  // The call site of an inlined subroutine DIE (DW_AT_call_file, looked up
  // in its unit's file table, and DW_AT_call_line) into frame; fields left
  // empty where the DIE does not say.
  void CallSite(Dwarf_Die* inlined, SymbolizedFrame* frame) {
    Dwarf_Attribute attr;
    Dwarf_Word value = 0;
    if (dw->dwarf_formudata(dw->dwarf_attr(inlined, DW_AT_call_line, &attr),
                            &value) == 0) {
      frame->line = value <= INT_MAX ? static_cast<int>(value) : 0;
    }
    Dwarf_Die cu;
    Dwarf_Files* files = nullptr;
    if (dw->dwarf_formudata(dw->dwarf_attr(inlined, DW_AT_call_file, &attr),
                            &value) == 0 &&
        dw->dwarf_diecu(inlined, &cu, nullptr, nullptr) != nullptr &&
        dw->dwarf_getsrcfiles(&cu, &files, nullptr) == 0) {
      const char* src = dw->dwarf_filesrc(files, value, nullptr, nullptr);
      if (src != nullptr) frame->file = src;
    }
  }

  // The index of the unit of cudie, made on first use.
  const CuIndex& IndexOf(Dwarf_Die* cudie) {
    std::unique_ptr<CuIndex>& index = cu_indexes[cudie->cu];
    if (index == nullptr) index = std::make_unique<CuIndex>(*dw, cudie);
    return *index;
  }

  // Expands frames (one frame, already filled by ResolveWithDwfl) into the
  // chain of inlined calls containing addr, innermost first, as
  // eu-addr2line -i and llvm-symbolizer --inlines do: the innermost inlined
  // function with the line table's file:line, each outer one with the call
  // site (DW_AT_call_file/line) of the one it contains, and last the real
  // function.
  void ExpandInlined(Dwfl_Module* mod, uintptr_t addr,
                     std::vector<SymbolizedFrame>* frames) {
    Dwarf_Addr bias = 0;
    Dwarf_Die* cudie = dw->dwfl_module_addrdie(mod, addr, &bias);
    if (cudie == nullptr) return;
    const CuIndex& cu = IndexOf(cudie);
    std::vector<Dwarf_Die> chain;
    cu.Lookup(addr - bias, &chain);

    // The inlined subroutines, innermost first, and the subprogram (or
    // entry point) they are in.
    std::vector<Dwarf_Die*> inlined;
    Dwarf_Die* real = nullptr;
    for (Dwarf_Die& die : chain) {
      if (dw->dwarf_tag(&die) != DW_TAG_inlined_subroutine) {
        real = &die;
        break;
      }
      inlined.push_back(&die);
    }
    if (inlined.empty()) {
      if (frames->front().function.empty() && real != nullptr) {
        frames->front().function = DieName(real, cu);
      }
      return;
    }

    // frames->front() becomes the last (real) frame; the inlined ones go
    // before it.
    SymbolizedFrame outer = std::move(frames->front());
    frames->clear();
    for (size_t k = 0; k < inlined.size(); ++k) {
      SymbolizedFrame f;
      f.pc = outer.pc;
      f.inlined = true;
      f.function = DieName(inlined[k], cu);
      if (k == 0) {
        f.file = outer.file;  // the line table's position is in the innermost
        f.line = outer.line;
      } else {
        CallSite(inlined[k - 1], &f);
      }
      frames->push_back(std::move(f));
    }
    outer.file.clear();
    outer.line = 0;
    CallSite(inlined.back(), &outer);
    if (outer.function.empty() && real != nullptr) {
      outer.function = DieName(real, cu);
    }
    frames->push_back(std::move(outer));
  }

  // Fills frames (empty) with pc's source-level frames: at least one.
  void Resolve(uintptr_t pc, std::vector<SymbolizedFrame>* frames) {
    frames->emplace_back();
    frames->back().pc = pc;
    EnsureInitialized();
    if (pc < 2) return;  // pc - 1 is not an address in any object
    uintptr_t addr = pc - 1;
    if (dwfl != nullptr) {
      Dwfl_Module* mod = ResolveWithDwfl(addr, &frames->back());
      if (mod != nullptr) ExpandInlined(mod, addr, frames);
    }
    // The loader fills what libdwfl could not (everything, without libdw).
    SymbolizedFrame& real = frames->back();
    if (real.module.empty() || real.function.empty()) {
      ResolveWithLoader(addr, &real);
    }
    for (SymbolizedFrame& f : *frames) {
      f.module = real.module;
      f.module_offset = real.module_offset;
    }
  }

  bool initialized = false;
  const DwApi* dw = nullptr;
  Dwfl* dwfl = nullptr;         // null: the dladdr backend is in use
  LoaderGeneration generation;  // of the last ReportModules()
  // Per unit, made on first use; emptied whenever modules are reported
  // again (a dropped module's units are freed).
  std::unordered_map<Dwarf_CU*, std::unique_ptr<CuIndex>> cu_indexes;
};

SymbolizedFrame Symbolizer::DescribeScriptFrame(uintptr_t pc) const {
  SymbolizedFrame frame;
  frame.pc = pc;
  frame.script = "script";
  if (strings_ == nullptr) return frame;
  Depot<char>::View v = strings_->Get(ScriptFrameStringId(pc));
  // "language\x1ffile\x1ffunction\x1fline" (Tracker::AddScriptFrames).
  std::string_view text(v.data, v.size);
  std::string_view fields[4];
  for (int i = 0; i < 4; ++i) {
    size_t cut = i < 3 ? text.find('\x1f') : text.size();
    if (cut == std::string_view::npos) return frame;
    fields[i] = text.substr(0, cut);
    text.remove_prefix(cut == text.size() ? cut : cut + 1);
  }
  frame.script = std::string(fields[0]);
  frame.file = std::string(fields[1]);
  frame.function = std::string(fields[2]);
  int line = 0;
  for (char c : fields[3]) line = line * 10 + (c - '0');
  frame.line = line;
  return frame;
}

bool IsLibraryScript(std::string_view file) {
  if (file.empty() || file.front() == '<') return true;
  for (std::string_view dir :
       {"/site-packages/", "/dist-packages/", "/gems/", "/vendor/"}) {
    if (file.find(dir) != std::string_view::npos) return true;
  }
  for (std::string_view prefix :
       {"/usr/lib/python", "/usr/local/lib/python", "/usr/share/perl",
        "/usr/lib/x86_64-linux-gnu/perl", "/usr/local/share/perl",
        "/usr/lib/ruby", "/usr/share/ruby", "/usr/lib/x86_64-linux-gnu/ruby",
        "/usr/share/php", "/usr/lib/php"}) {
    if (file.substr(0, prefix.size()) == prefix) return true;
  }
  // Interpreters installed under a home (pyenv, rbenv, perlbrew).
  for (std::string_view dir :
       {"/.pyenv/versions/", "/.rbenv/versions/", "/perl5/perlbrew/"}) {
    if (file.find(dir) != std::string_view::npos &&
        file.find("/lib/") != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

Symbolizer::Symbolizer() : impl_(new (std::nothrow) Impl) { NoMemoryFrames(); }

Symbolizer::~Symbolizer() = default;

const std::vector<SymbolizedFrame>& Symbolizer::SymbolizeInlined(uintptr_t pc) {
  auto it = cache_.find(pc);
  if (it != cache_.end()) return it->second;
  try {
    std::vector<SymbolizedFrame> frames;
    if (IsScriptFrame(pc)) {
      frames.push_back(DescribeScriptFrame(pc));
    } else if (impl_ != nullptr) {
      impl_->Resolve(pc, &frames);
    } else {
      frames.emplace_back();
      frames.back().pc = pc;
      if (pc >= 2) ResolveWithLoader(pc - 1, &frames.back());
    }
    return cache_.emplace(pc, std::move(frames)).first->second;
  } catch (...) {
    // Out of memory: an empty frame rather than an exception into the host.
    std::vector<SymbolizedFrame>& empty = NoMemoryFrames();
    if (empty.empty()) {  // could not be made up front: try now
      try {
        empty.emplace_back();
      } catch (...) {
        abort();  // nothing to return (no frame could ever be allocated)
      }
    }
    empty.front() = SymbolizedFrame();  // moves nothing, allocates nothing
    empty.front().pc = pc;
    return empty;
  }
}

const SymbolizedFrame& Symbolizer::Symbolize(uintptr_t pc) {
  return SymbolizeInlined(pc).front();
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
