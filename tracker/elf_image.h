// Reading and patching the dynamic tables of ELF objects already loaded in
// this process: symbol lookup by name and version, the import slots (GOT
// entries) that relocations fill, and writing such a slot.
//
// Everything here reads memory the dynamic loader has mapped; it does no file
// I/O and no heap allocation (stack memory only), so it may be called from a
// hook, dlopen and dlsym wrappers included. x86-64 only (RELA relocations).
//
// Thread safety: ElfImage is immutable after construction and may be used from
// any thread while its object stays loaded. ForEachLoadedObject and
// FindLoadedObject hold the loader's dl_iterate_phdr lock while they run.
// WriteImportSlot serializes its callers with a mutex of its own.
#ifndef LEAKWATCH_TRACKER_ELF_IMAGE_H_
#define LEAKWATCH_TRACKER_ELF_IMAGE_H_

#include <elf.h>
#include <link.h>

#include <cstddef>
#include <cstdint>

namespace leakwatch {

// This process's ELF types (ElfW spelled out, which clang-format can read).
using ElfAddr = ElfW(Addr);
using ElfDyn = ElfW(Dyn);
using ElfHalf = ElfW(Half);
using ElfPhdr = ElfW(Phdr);
using ElfRela = ElfW(Rela);
using ElfSym = ElfW(Sym);
using ElfVerdaux = ElfW(Verdaux);
using ElfVerdef = ElfW(Verdef);
using ElfXword = ElfW(Xword);

// A loaded object as dl_iterate_phdr describes it. `dynamic` is null for an
// object without PT_DYNAMIC; `name` is "" for the main program and never null.
// The pointers are valid while the object stays loaded.
struct LoadedObject {
  uintptr_t bias = 0;
  const ElfDyn* dynamic = nullptr;
  const ElfPhdr* phdr = nullptr;
  size_t phnum = 0;
  const char* name = "";
};

// Calls `f(const LoadedObject&)` for every loaded object, in the loader's
// order (main program first), until f returns false. Holds the loader's
// dl_iterate_phdr lock while f runs: f must not dlopen or dlclose.
template <typename F>
void ForEachLoadedObject(F f);

// The loaded object one of whose PT_LOAD segments contains `addr`; false (out
// untouched) if none does.
bool FindLoadedObject(const void* addr, LoadedObject* out);

// A loaded ELF object's dynamic symbol table and relocations.
//
// Dynamic entries' addresses are taken as absolute when the loader has
// relocated them in place and as offsets from the bias when they are below it
// (the vDSO's read-only dynamic section; DT_VERDEF in every object).
class ElfImage {
 public:
  // From the object's load bias and dynamic section (link_map l_addr and l_ld,
  // or LoadedObject). A null `dynamic` gives an invalid image.
  ElfImage(uintptr_t bias, const ElfDyn* dynamic);
  explicit ElfImage(const LoadedObject& object)
      : ElfImage(object.bias, object.dynamic) {}

  // True if the dynamic section was readable and names a symbol table and a
  // string table; an invalid image finds no symbols and no import slots.
  // Lookup also needs DT_GNU_HASH or DT_HASH and finds nothing without.
  bool valid() const { return symtab_ != nullptr && strtab_ != nullptr; }

  // The address of the function (STT_FUNC) or object (STT_OBJECT) `name`
  // defined in this object, or null. With `version` null, the default version
  // (versym without the hidden bit), or a hidden one if it is the only
  // definition; otherwise exactly the version named `version` (DT_VERDEF).
  // Null if the chosen definition is an STT_GNU_IFUNC (its address is the
  // resolver, not the function) or of any other type.
  void* Lookup(const char* name, const char* version = nullptr) const;

  // Like Lookup, also giving the definition's extent [*lo, *hi) from st_size.
  // False (lo and hi untouched) where Lookup would return null.
  bool LookupRange(const char* name, uintptr_t* lo, uintptr_t* hi,
                   const char* version = nullptr) const;

  // Calls `f(const char* name, void** slot)` for every import slot: an
  // R_X86_64_JUMP_SLOT (DT_JMPREL) or R_X86_64_GLOB_DAT (DT_RELA) relocation
  // whose symbol has a name and is undefined in this object. Stops when f
  // returns false. A symbol imported both ways is reported once per slot.
  template <typename F>
  void ForEachImportSlot(F f) const;

 private:
  const ElfSym* FindDefinition(const char* name, const char* version) const;
  // Calls `visit(index)` for each symbol index in name's hash chain until
  // visit returns true.
  template <typename V>
  void ForEachCandidate(const char* name, V visit) const;
  // The symbol the relocation refers to, if it is an import with a name.
  const char* ImportName(const ElfRela& rela) const;
  // DT_VERDEF's index of the version named `version`, or 0 if none.
  uint16_t VersionIndex(const char* version) const;
  // True if symbol `sym` is named `name` and defined here, visible outside.
  bool IsDefinition(const ElfSym& sym, const char* name) const;
  // d_ptr as an absolute address (see the class comment).
  uintptr_t Absolute(ElfAddr d_ptr) const {
    return d_ptr < bias_ ? d_ptr + bias_ : d_ptr;
  }

  uintptr_t bias_;
  const ElfSym* symtab_ = nullptr;
  const char* strtab_ = nullptr;
  size_t strsz_ = 0;
  const uint32_t* gnu_hash_ = nullptr;
  const uint32_t* sysv_hash_ = nullptr;
  const ElfHalf* versym_ = nullptr;
  const ElfVerdef* verdef_ = nullptr;
  size_t verdefnum_ = 0;
  const ElfRela* jmprel_ = nullptr;  // null unless DT_PLTREL is DT_RELA
  size_t jmprel_count_ = 0;
  const ElfRela* rela_ = nullptr;
  size_t rela_count_ = 0;
};

// Writes `value` into the import slot `slot` of the object with load bias
// `bias` and program headers `phdr`/`phnum` with one atomic 8-byte store. A
// slot inside the object's PT_GNU_RELRO region as the loader protects it
// (whole pages: start rounded down, end rounded down) has its page made
// writable for the store and read-only again after; any other slot is written
// directly. False, with the slot untouched, if the page cannot be made
// writable. Callers are serialized by a mutex of this module.
bool WriteImportSlot(void** slot, void* value, uintptr_t bias,
                     const ElfPhdr* phdr, size_t phnum);

// --- templates ---------------------------------------------------------------

namespace elf_image_internal {
LoadedObject FromPhdrInfo(const dl_phdr_info& info);
}  // namespace elf_image_internal

template <typename F>
void ForEachLoadedObject(F f) {
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        F& fn = *static_cast<F*>(data);
        return fn(elf_image_internal::FromPhdrInfo(*info)) ? 0 : 1;
      },
      &f);
}

template <typename F>
void ElfImage::ForEachImportSlot(F f) const {
  if (!valid()) return;
  struct Table {
    const ElfRela* rela;
    size_t count;
    uint32_t type;
  };
  const Table tables[] = {{jmprel_, jmprel_count_, R_X86_64_JUMP_SLOT},
                          {rela_, rela_count_, R_X86_64_GLOB_DAT}};
  for (const Table& table : tables) {
    for (size_t i = 0; i < table.count; ++i) {
      const ElfRela& rela = table.rela[i];
      if (ELF64_R_TYPE(rela.r_info) != table.type) continue;
      const char* name = ImportName(rela);
      if (name == nullptr) continue;
      if (!f(name, reinterpret_cast<void**>(bias_ + rela.r_offset))) return;
    }
  }
}

}  // namespace leakwatch

#endif  // LEAKWATCH_TRACKER_ELF_IMAGE_H_
