// Tests for tracker/elf_image.h: loaded objects, symbol lookup by name and
// version against what glibc's dlsym/dlvsym say, import slots, and
// redirecting them in shared objects built by tests/unit/CMakeLists.txt.

#include "tracker/elf_image.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/auxv.h>
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace leakwatch {
namespace {

using IntFn = int (*)(int);

int Replacement(int x) { return x * 100; }

void* LibcHandle() {
  void* handle = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  EXPECT_NE(handle, nullptr) << dlerror();
  return handle;
}

// The loaded object containing `addr`; fails the test if there is none.
LoadedObject ObjectAt(const void* addr) {
  LoadedObject object;
  EXPECT_TRUE(FindLoadedObject(addr, &object)) << addr;
  return object;
}

ElfImage LibcImage() {
  return ElfImage(ObjectAt(dlsym(LibcHandle(), "dlsym")));
}

// The permissions ("r--p", ...) of the mapping containing `addr` in
// /proc/self/maps, or "" if none does.
std::string PermissionsAt(const void* addr) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    uintptr_t lo = 0, hi = 0;
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %7s", &lo, &hi, perms) == 3 &&
        a >= lo && a < hi) {
      return perms;
    }
  }
  return "";
}

bool HasTag(const ElfDyn* dynamic, ElfW(Sxword) tag) {
  for (; dynamic->d_tag != DT_NULL; ++dynamic) {
    if (dynamic->d_tag == tag) return true;
  }
  return false;
}

struct Slot {
  std::string name;
  void** slot;
};

std::vector<Slot> ImportSlots(const ElfImage& image) {
  std::vector<Slot> slots;
  image.ForEachImportSlot([&](const char* name, void** slot) {
    slots.push_back({name, slot});
    return true;
  });
  return slots;
}

std::vector<void**> SlotsNamed(const ElfImage& image, const std::string& name) {
  std::vector<void**> found;
  for (const Slot& s : ImportSlots(image)) {
    if (s.name == name) found.push_back(s.slot);
  }
  return found;
}

TEST(ElfImageTest, ForEachLoadedObjectStartsWithTheProgramAndListsLibc) {
  std::vector<std::string> names;
  std::vector<bool> has_dynamic;
  ForEachLoadedObject([&](const LoadedObject& object) {
    names.push_back(object.name);
    has_dynamic.push_back(object.dynamic != nullptr);
    return true;
  });
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names[0], "");
  bool libc = false;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].find("libc.so.6") != std::string::npos) {
      libc = true;
      EXPECT_TRUE(has_dynamic[i]);
    }
  }
  EXPECT_TRUE(libc);

  int visited = 0;
  ForEachLoadedObject([&](const LoadedObject&) {
    ++visited;
    return false;
  });
  EXPECT_EQ(visited, 1);
}

TEST(ElfImageTest, FindLoadedObjectNamesTheObjectContainingAnAddress) {
  LoadedObject libc = ObjectAt(dlsym(LibcHandle(), "malloc"));
  EXPECT_NE(std::strstr(libc.name, "libc.so.6"), nullptr) << libc.name;
  EXPECT_NE(libc.dynamic, nullptr);

  LoadedObject self = ObjectAt(reinterpret_cast<void*>(&Replacement));
  EXPECT_STREQ(self.name, "");
  EXPECT_NE(self.bias, libc.bias);

  int on_stack = 0;
  LoadedObject none;
  none.bias = 42;
  EXPECT_FALSE(FindLoadedObject(&on_stack, &none));
  EXPECT_EQ(none.bias, 42u);
}

TEST(ElfImageTest, LookupAgreesWithDlsymInLibc) {
  ElfImage libc = LibcImage();
  ASSERT_TRUE(libc.valid());
  for (const char* name : {"dlsym", "malloc", "free", "environ"}) {
    void* expected = dlsym(LibcHandle(), name);
    ASSERT_NE(expected, nullptr) << name;
    EXPECT_EQ(libc.Lookup(name), expected) << name;
  }
}

TEST(ElfImageTest, LookupRangeGivesTheSymbolsExtent) {
  uintptr_t lo = 0, hi = 0;
  ASSERT_TRUE(LibcImage().LookupRange("malloc", &lo, &hi));
  EXPECT_EQ(lo, reinterpret_cast<uintptr_t>(dlsym(LibcHandle(), "malloc")));
  EXPECT_GT(hi, lo);
  EXPECT_LT(hi - lo, 1u << 16);

  lo = hi = 7;
  EXPECT_FALSE(LibcImage().LookupRange("lw_no_such_symbol", &lo, &hi));
  EXPECT_EQ(lo, 7u);
  EXPECT_EQ(hi, 7u);
}

TEST(ElfImageTest, LookupFindsNothingForAbsentOrUndefinedNames) {
  ElfImage libc = LibcImage();
  EXPECT_EQ(libc.Lookup("lw_no_such_symbol"), nullptr);
  EXPECT_EQ(libc.Lookup(""), nullptr);
  // Imported by libc from ld.so, defined there.
  EXPECT_EQ(libc.Lookup("_dl_argv"), nullptr);
  EXPECT_EQ(libc.Lookup("__tls_get_addr"), nullptr);
  // A version definition's own absolute symbol is not an address.
  EXPECT_EQ(libc.Lookup("GLIBC_2.2.5"), nullptr);

  EXPECT_EQ(ElfImage(0, nullptr).Lookup("malloc"), nullptr);
  EXPECT_FALSE(ElfImage(0, nullptr).valid());
}

TEST(ElfImageTest, LookupRespectsVersions) {
  void* libc_handle = LibcHandle();
  ElfImage libc = LibcImage();
  // dlsym@@GLIBC_2.34 (the default) and dlsym@GLIBC_2.2.5, one function.
  for (const char* version : {"GLIBC_2.34", "GLIBC_2.2.5"}) {
    void* expected = dlvsym(libc_handle, "dlsym", version);
    ASSERT_NE(expected, nullptr) << version;
    EXPECT_EQ(libc.Lookup("dlsym", version), expected) << version;
  }
  // Two different functions each; the hidden one comes first in libc's
  // symbol table for glob and pthread_cond_init, second for realpath.
  struct Versions {
    const char* name;
    const char* current;
    const char* old;
  };
  for (const Versions& v :
       {Versions{"realpath", "GLIBC_2.3", "GLIBC_2.2.5"},
        Versions{"glob", "GLIBC_2.27", "GLIBC_2.2.5"},
        Versions{"pthread_cond_init", "GLIBC_2.3.2", "GLIBC_2.2.5"}}) {
    void* current = dlvsym(libc_handle, v.name, v.current);
    void* old = dlvsym(libc_handle, v.name, v.old);
    ASSERT_NE(current, nullptr) << v.name;
    ASSERT_NE(old, nullptr) << v.name;
    ASSERT_NE(current, old) << v.name;
    EXPECT_EQ(dlsym(libc_handle, v.name), current) << v.name;
    EXPECT_EQ(libc.Lookup(v.name), current) << v.name;
    EXPECT_EQ(libc.Lookup(v.name, v.current), current) << v.name;
    EXPECT_EQ(libc.Lookup(v.name, v.old), old) << v.name;
  }

  EXPECT_EQ(libc.Lookup("realpath", "GLIBC_9.99"), nullptr);
  EXPECT_EQ(libc.Lookup("realpath", "libc.so.6"), nullptr);  // the base
  // malloc has no GLIBC_2.34 version.
  EXPECT_EQ(libc.Lookup("malloc", "GLIBC_2.34"), nullptr);
}

TEST(ElfImageTest, IfuncDefinitionGivesNull) {
  // memcpy@@GLIBC_2.14 is an IFUNC; memcpy@GLIBC_2.2.5 a plain function.
  ElfImage libc = LibcImage();
  EXPECT_EQ(libc.Lookup("memcpy"), nullptr);
  void* old_memcpy = dlvsym(LibcHandle(), "memcpy", "GLIBC_2.2.5");
  ASSERT_NE(old_memcpy, nullptr);
  EXPECT_EQ(libc.Lookup("memcpy", "GLIBC_2.2.5"), old_memcpy);
}

TEST(ElfImageTest, LooksUpInTheVdsoWhoseDynamicSectionHoldsOffsets) {
  const void* vdso = reinterpret_cast<const void*>(getauxval(AT_SYSINFO_EHDR));
  if (vdso == nullptr) GTEST_SKIP() << "no vDSO";
  LoadedObject object = ObjectAt(vdso);
  ElfImage image(object);
  ASSERT_TRUE(image.valid());
  using ClockGettime = int (*)(clockid_t, timespec*);
  auto fn = reinterpret_cast<ClockGettime>(
      image.Lookup("__vdso_clock_gettime", "LINUX_2.6"));
  ASSERT_NE(fn, nullptr);
  EXPECT_EQ(ObjectAt(reinterpret_cast<void*>(fn)).bias, object.bias);
  timespec ts{};
  EXPECT_EQ(fn(CLOCK_MONOTONIC, &ts), 0);
  EXPECT_GT(ts.tv_sec + ts.tv_nsec, 0);
}

// The provider and the user objects, loaded for one test.
class ElfImageSlotTest : public testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    provider_ = dlopen(LW_ELF_PROVIDER, RTLD_NOW);
    ASSERT_NE(provider_, nullptr) << dlerror();
    user_ = dlopen(GetParam(), RTLD_LAZY);
    ASSERT_NE(user_, nullptr) << dlerror();
    call_ = reinterpret_cast<IntFn>(dlsym(user_, "lw_elf_user_call"));
    call_called_ =
        reinterpret_cast<IntFn>(dlsym(user_, "lw_elf_user_call_called"));
    address_ =
        reinterpret_cast<IntFn (*)()>(dlsym(user_, "lw_elf_user_address"));
    ASSERT_NE(call_, nullptr);
    ASSERT_NE(call_called_, nullptr);
    ASSERT_NE(address_, nullptr);
    user_object_ = ObjectAt(reinterpret_cast<void*>(call_));
  }
  void TearDown() override {
    if (user_ != nullptr) dlclose(user_);
    if (provider_ != nullptr) dlclose(provider_);
  }
  bool BindNow() const { return std::strcmp(GetParam(), LW_ELF_USER_NOW) == 0; }

  void* provider_ = nullptr;
  void* user_ = nullptr;
  IntFn call_ = nullptr;
  IntFn call_called_ = nullptr;
  IntFn (*address_)() = nullptr;
  LoadedObject user_object_;
};

TEST_P(ElfImageSlotTest, UserImportsEachProviderFunctionThroughOneSlot) {
  // The lazy variant's lookups go through DT_HASH, whose chains also hold
  // the undefined symbols.
  EXPECT_EQ(HasTag(user_object_.dynamic, DT_GNU_HASH), BindNow());
  EXPECT_TRUE(HasTag(user_object_.dynamic, DT_HASH) || BindNow());
  ElfImage user(user_object_);
  ASSERT_TRUE(user.valid());
  EXPECT_EQ(user.Lookup("lw_elf_target"), nullptr);  // undefined here
  EXPECT_EQ(user.Lookup("lw_elf_user_call"), dlsym(user_, "lw_elf_user_call"));
  for (const char* name : {"lw_elf_target", "lw_elf_called"}) {
    std::vector<void**> slots = SlotsNamed(user, name);
    ASSERT_EQ(slots.size(), 1u) << name;
    EXPECT_EQ(ObjectAt(slots[0]).bias, user_object_.bias) << name;
  }
  // The slot holds what the loader resolved (lw_elf_called may still be
  // unbound in the lazy variant; the call binds it).
  void* target = dlsym(provider_, "lw_elf_target");
  EXPECT_EQ(*SlotsNamed(user, "lw_elf_target")[0], target);
  EXPECT_EQ(call_called_(1), 3);
  EXPECT_EQ(*SlotsNamed(user, "lw_elf_called")[0],
            dlsym(provider_, "lw_elf_called"));

  int seen = 0;
  user.ForEachImportSlot([&](const char*, void**) {
    ++seen;
    return false;
  });
  EXPECT_EQ(seen, 1);
}

TEST_P(ElfImageSlotTest, ProviderDefinitionIsNotAnImportSlot) {
  ElfImage provider(ObjectAt(dlsym(provider_, "lw_elf_target")));
  ASSERT_TRUE(provider.valid());
  EXPECT_EQ(provider.Lookup("lw_elf_target"),
            dlsym(provider_, "lw_elf_target"));
  // It has relocations against its own lw_elf_target (the provider calls it
  // and takes its address), none of them an import.
  EXPECT_TRUE(SlotsNamed(provider, "lw_elf_target").empty());
  EXPECT_TRUE(SlotsNamed(provider, "lw_elf_called").empty());
  auto address = reinterpret_cast<IntFn (*)()>(
      dlsym(provider_, "lw_elf_provider_address"));
  ASSERT_NE(address, nullptr);
  EXPECT_EQ(reinterpret_cast<void*>(address()),
            dlsym(provider_, "lw_elf_target"));
}

TEST_P(ElfImageSlotTest, WriteImportSlotRedirectsCallsAndRestoresProtection) {
  ElfImage user(user_object_);
  ASSERT_EQ(call_(3), 4);
  ASSERT_EQ(call_called_(3), 5);
  void** target_slot = SlotsNamed(user, "lw_elf_target").at(0);
  void** called_slot = SlotsNamed(user, "lw_elf_called").at(0);
  const std::string target_perms = PermissionsAt(target_slot);
  const std::string called_perms = PermissionsAt(called_slot);
  // BIND_NOW + RELRO: both slots read-only. Lazy: the JUMP_SLOT writable.
  EXPECT_EQ(target_perms, "r--p");
  EXPECT_EQ(called_perms, BindNow() ? "r--p" : "rw-p");

  void* old_target = *target_slot;
  void* old_called = *called_slot;
  void* replacement = reinterpret_cast<void*>(&Replacement);
  for (void** slot : {target_slot, called_slot}) {
    ASSERT_TRUE(WriteImportSlot(slot, replacement, user_object_.bias,
                                user_object_.phdr, user_object_.phnum));
  }
  EXPECT_EQ(call_(3), 300);
  EXPECT_EQ(call_called_(3), 300);
  EXPECT_EQ(address_(), &Replacement);
  EXPECT_EQ(PermissionsAt(target_slot), target_perms);
  EXPECT_EQ(PermissionsAt(called_slot), called_perms);

  ASSERT_TRUE(WriteImportSlot(target_slot, old_target, user_object_.bias,
                              user_object_.phdr, user_object_.phnum));
  ASSERT_TRUE(WriteImportSlot(called_slot, old_called, user_object_.bias,
                              user_object_.phdr, user_object_.phnum));
  EXPECT_EQ(call_(3), 4);
  EXPECT_EQ(call_called_(3), 5);
}

INSTANTIATE_TEST_SUITE_P(Binding, ElfImageSlotTest,
                         testing::Values(LW_ELF_USER_NOW, LW_ELF_USER_LAZY),
                         [](const testing::TestParamInfo<const char*>& info) {
                           return std::strcmp(info.param, LW_ELF_USER_NOW) == 0
                                      ? "BindNowRelro"
                                      : "LazySysvHash";
                         });

}  // namespace
}  // namespace leakwatch
