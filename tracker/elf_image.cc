#include "tracker/elf_image.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

namespace leakwatch {
namespace {

// A dynamic section longer than this is taken as garbage.
constexpr size_t kMaxDynamicEntries = 1024;

constexpr ElfHalf kVersionIndexMask = 0x7fff;
constexpr ElfHalf kVersionHidden = 0x8000;

// Serializes WriteImportSlot, so two writers never interleave one page's
// protection changes.
pthread_mutex_t g_write_mutex = PTHREAD_MUTEX_INITIALIZER;

uint32_t GnuHash(const char* name) {
  uint32_t h = 5381;
  for (const unsigned char* p = reinterpret_cast<const unsigned char*>(name);
       *p != '\0'; ++p) {
    h = h * 33 + *p;
  }
  return h;
}

uint32_t SysvHash(const char* name) {
  uint32_t h = 0;
  for (const unsigned char* p = reinterpret_cast<const unsigned char*>(name);
       *p != '\0'; ++p) {
    h = (h << 4) + *p;
    uint32_t high = h & 0xf0000000;
    if (high != 0) h ^= high >> 24;
    h &= ~high;
  }
  return h;
}

}  // namespace

namespace elf_image_internal {

LoadedObject FromPhdrInfo(const dl_phdr_info& info) {
  LoadedObject object;
  object.bias = info.dlpi_addr;
  object.phdr = info.dlpi_phdr;
  object.phnum = info.dlpi_phnum;
  if (info.dlpi_name != nullptr) object.name = info.dlpi_name;
  for (size_t i = 0; i < object.phnum; ++i) {
    if (object.phdr[i].p_type == PT_DYNAMIC) {
      object.dynamic = reinterpret_cast<const ElfDyn*>(info.dlpi_addr +
                                                       object.phdr[i].p_vaddr);
    }
  }
  return object;
}

}  // namespace elf_image_internal

bool FindLoadedObject(const void* addr, LoadedObject* out) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  bool found = false;
  ForEachLoadedObject([&](const LoadedObject& object) {
    for (size_t i = 0; i < object.phnum; ++i) {
      const ElfPhdr& ph = object.phdr[i];
      uintptr_t start = object.bias + ph.p_vaddr;
      if (ph.p_type == PT_LOAD && a >= start && a - start < ph.p_memsz) {
        *out = object;
        found = true;
        return false;
      }
    }
    return true;
  });
  return found;
}

ElfImage::ElfImage(uintptr_t bias, const ElfDyn* dynamic) : bias_(bias) {
  if (dynamic == nullptr) return;
  ElfXword syment = sizeof(ElfSym);
  ElfXword relaent = sizeof(ElfRela);
  ElfXword pltrel = DT_RELA;
  ElfXword jmprel_size = 0;
  ElfXword rela_size = 0;
  size_t n = 0;
  for (; n < kMaxDynamicEntries && dynamic[n].d_tag != DT_NULL; ++n) {
    const ElfDyn& d = dynamic[n];
    const uintptr_t ptr = Absolute(d.d_un.d_ptr);
    switch (d.d_tag) {
      case DT_SYMTAB:
        symtab_ = reinterpret_cast<const ElfSym*>(ptr);
        break;
      case DT_STRTAB:
        strtab_ = reinterpret_cast<const char*>(ptr);
        break;
      case DT_STRSZ:
        strsz_ = d.d_un.d_val;
        break;
      case DT_SYMENT:
        syment = d.d_un.d_val;
        break;
      case DT_GNU_HASH:
        gnu_hash_ = reinterpret_cast<const uint32_t*>(ptr);
        break;
      case DT_HASH:
        sysv_hash_ = reinterpret_cast<const uint32_t*>(ptr);
        break;
      case DT_VERSYM:
        versym_ = reinterpret_cast<const ElfHalf*>(ptr);
        break;
      case DT_VERDEF:
        verdef_ = reinterpret_cast<const ElfVerdef*>(ptr);
        break;
      case DT_VERDEFNUM:
        verdefnum_ = d.d_un.d_val;
        break;
      case DT_JMPREL:
        jmprel_ = reinterpret_cast<const ElfRela*>(ptr);
        break;
      case DT_PLTRELSZ:
        jmprel_size = d.d_un.d_val;
        break;
      case DT_PLTREL:
        pltrel = d.d_un.d_val;
        break;
      case DT_RELA:
        rela_ = reinterpret_cast<const ElfRela*>(ptr);
        break;
      case DT_RELASZ:
        rela_size = d.d_un.d_val;
        break;
      case DT_RELAENT:
        relaent = d.d_un.d_val;
        break;
    }
  }
  if (n == kMaxDynamicEntries || syment != sizeof(ElfSym) || strsz_ == 0) {
    symtab_ = nullptr;
    strtab_ = nullptr;
    return;
  }
  if (pltrel != DT_RELA || relaent != sizeof(ElfRela)) jmprel_ = nullptr;
  if (relaent != sizeof(ElfRela)) rela_ = nullptr;
  if (jmprel_ != nullptr) jmprel_count_ = jmprel_size / sizeof(ElfRela);
  if (rela_ != nullptr) rela_count_ = rela_size / sizeof(ElfRela);
  if (versym_ == nullptr) verdef_ = nullptr;
}

template <typename V>
void ElfImage::ForEachCandidate(const char* name, V visit) const {
  if (gnu_hash_ != nullptr) {
    // Header: nbuckets, symoffset, bloom words, bloom shift; then the bloom
    // filter, the buckets and one hash value per symbol from symoffset on
    // (low bit set on the last of each chain).
    const uint32_t nbuckets = gnu_hash_[0];
    const uint32_t symoffset = gnu_hash_[1];
    const uint32_t bloom_size = gnu_hash_[2];
    const uint32_t bloom_shift = gnu_hash_[3];
    if (nbuckets == 0 || bloom_size == 0) return;
    const ElfAddr* bloom = reinterpret_cast<const ElfAddr*>(gnu_hash_ + 4);
    const uint32_t* buckets =
        reinterpret_cast<const uint32_t*>(bloom + bloom_size);
    const uint32_t* chain = buckets + nbuckets;
    constexpr uint32_t kWordBits = sizeof(ElfAddr) * 8;
    const uint32_t hash = GnuHash(name);
    const ElfAddr word = bloom[(hash / kWordBits) % bloom_size];
    const ElfAddr mask = (ElfAddr{1} << (hash % kWordBits)) |
                         (ElfAddr{1} << ((hash >> bloom_shift) % kWordBits));
    if ((word & mask) != mask) return;
    const uint32_t first = buckets[hash % nbuckets];  // 0: empty bucket
    if (first == 0 || first < symoffset) return;
    for (uint32_t i = first;; ++i) {
      const uint32_t value = chain[i - symoffset];
      if ((value | 1) == (hash | 1) && visit(i)) return;
      if ((value & 1) != 0) return;
    }
  } else if (sysv_hash_ != nullptr) {
    // Header: nbucket, nchain; then the buckets and one link per symbol.
    const uint32_t nbucket = sysv_hash_[0];
    const uint32_t nchain = sysv_hash_[1];
    if (nbucket == 0) return;
    const uint32_t* buckets = sysv_hash_ + 2;
    const uint32_t* chain = buckets + nbucket;
    uint32_t steps = 0;
    for (uint32_t i = buckets[SysvHash(name) % nbucket];
         i != STN_UNDEF && i < nchain && steps < nchain;
         i = chain[i], ++steps) {
      if (visit(i)) return;
    }
  }
}

bool ElfImage::IsDefinition(const ElfSym& sym, const char* name) const {
  return sym.st_shndx != SHN_UNDEF && sym.st_shndx != SHN_ABS &&
         ELF64_ST_BIND(sym.st_info) != STB_LOCAL && sym.st_name < strsz_ &&
         std::strcmp(strtab_ + sym.st_name, name) == 0;
}

uint16_t ElfImage::VersionIndex(const char* version) const {
  const ElfVerdef* def = verdef_;
  for (size_t n = 0; def != nullptr && n < verdefnum_; ++n) {
    if ((def->vd_flags & VER_FLG_BASE) == 0 && def->vd_cnt > 0) {
      const auto* aux = reinterpret_cast<const ElfVerdaux*>(
          reinterpret_cast<const char*>(def) + def->vd_aux);
      if (aux->vda_name < strsz_ &&
          std::strcmp(strtab_ + aux->vda_name, version) == 0) {
        return def->vd_ndx;
      }
    }
    if (def->vd_next == 0) break;
    def = reinterpret_cast<const ElfVerdef*>(
        reinterpret_cast<const char*>(def) + def->vd_next);
  }
  return 0;
}

const ElfSym* ElfImage::FindDefinition(const char* name,
                                       const char* version) const {
  if (!valid()) return nullptr;
  uint16_t wanted = 0;
  if (version != nullptr) {
    wanted = VersionIndex(version);
    if (wanted == 0) return nullptr;
  }
  const ElfSym* found = nullptr;
  const ElfSym* hidden = nullptr;
  size_t hidden_count = 0;
  ForEachCandidate(name, [&](uint32_t i) {
    const ElfSym& sym = symtab_[i];
    if (!IsDefinition(sym, name)) return false;
    const ElfHalf versym = versym_ != nullptr ? versym_[i] : VER_NDX_GLOBAL;
    const ElfHalf index = versym & kVersionIndexMask;
    if (index == VER_NDX_LOCAL) return false;
    if (version != nullptr ? index == wanted : (versym & kVersionHidden) == 0) {
      found = &sym;
      return true;
    }
    hidden = &sym;
    ++hidden_count;
    return false;
  });
  if (found == nullptr && version == nullptr && hidden_count == 1) {
    found = hidden;
  }
  if (found == nullptr) return nullptr;
  const unsigned type = ELF64_ST_TYPE(found->st_info);
  return type == STT_FUNC || type == STT_OBJECT ? found : nullptr;
}

void* ElfImage::Lookup(const char* name, const char* version) const {
  const ElfSym* sym = FindDefinition(name, version);
  return sym != nullptr ? reinterpret_cast<void*>(bias_ + sym->st_value)
                        : nullptr;
}

bool ElfImage::LookupRange(const char* name, uintptr_t* lo, uintptr_t* hi,
                           const char* version) const {
  const ElfSym* sym = FindDefinition(name, version);
  if (sym == nullptr) return false;
  *lo = bias_ + sym->st_value;
  *hi = *lo + sym->st_size;
  return true;
}

const char* ElfImage::ImportName(const ElfRela& rela) const {
  const size_t index = ELF64_R_SYM(rela.r_info);
  if (index == STN_UNDEF) return nullptr;
  const ElfSym& sym = symtab_[index];
  if (sym.st_shndx != SHN_UNDEF || sym.st_name == 0 || sym.st_name >= strsz_) {
    return nullptr;
  }
  return strtab_ + sym.st_name;
}

bool WriteImportSlot(void** slot, void* value, uintptr_t bias,
                     const ElfPhdr* phdr, size_t phnum) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(slot);
  if (addr % alignof(void*) != 0) return false;  // not one atomic store
  const uintptr_t page_mask = ~(static_cast<uintptr_t>(getpagesize()) - 1);
  bool in_relro = false;
  for (size_t i = 0; i < phnum; ++i) {
    if (phdr[i].p_type != PT_GNU_RELRO) continue;
    const uintptr_t start = (bias + phdr[i].p_vaddr) & page_mask;
    const uintptr_t end =
        (bias + phdr[i].p_vaddr + phdr[i].p_memsz) & page_mask;
    if (addr >= start && addr < end) in_relro = true;
  }
  // An aligned slot lies within one page.
  void* page = reinterpret_cast<void*>(addr & page_mask);
  const size_t page_size = ~page_mask + 1;
  pthread_mutex_lock(&g_write_mutex);
  bool ok = !in_relro || mprotect(page, page_size, PROT_READ | PROT_WRITE) == 0;
  if (ok) {
    __atomic_store_n(slot, value, __ATOMIC_RELEASE);
    if (in_relro) mprotect(page, page_size, PROT_READ);
  }
  pthread_mutex_unlock(&g_write_mutex);
  return ok;
}

}  // namespace leakwatch
