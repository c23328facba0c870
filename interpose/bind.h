// Reaching the calls that bind around the hooks.
//
// Two ways a program reaches a client library without going through the
// symbol lookup that LD_PRELOAD wins:
//   - it asks dlsym (or dlvsym) for a function on the library's own handle
//     (psycopg 3's ctypes implementation): the answer is the hook instead;
//   - a module is loaded with RTLD_DEEPBIND (PHP's extensions), so its own
//     dependencies come before us: its import slots (GOT entries) for the
//     functions we hook are rewritten to the hooks (RewriteImportSlots, the
//     one place that rewrites slots).
//
// dlsym and dlvsym are entered through a few instructions of assembly: glibc
// takes the caller's return address for RTLD_NEXT (and for RTLD_DEFAULT, the
// caller's scope), so those two are passed on with a jump, never a call: the
// real function sees the program's caller, exactly as without us. The agent's
// own lookups (its callers lie in libleakwatch) are never redirected.
#ifndef LEAKWATCH_INTERPOSE_BIND_H_
#define LEAKWATCH_INTERPOSE_BIND_H_

#include "tracker/elf_image.h"

namespace leakwatch {

// libc's dlsym: for the agent's lookups that must not be redirected.
void* RealDlsym(void* handle, const char* name);

// Points every import slot of `object` that names a function libleakwatch
// hooks, and does not hold the hook already, to the hook. Returns the number
// of slots rewritten; `*failed` counts the slots that could not be written.
// Not from a dl_iterate_phdr callback.
// With `saved`, each slot about to be rewritten is passed to it first with
// its old value and the hook (and `arg`); it returns false to leave the
// slot alone. Safe in a dl_iterate_phdr callback once IsAgentObject has
// been called outside one.
using SlotSaver = bool (*)(void** slot, void* original, void* hook, void* arg);
int RewriteImportSlots(const LoadedObject& object, int* failed,
                       SlotSaver saved = nullptr, void* arg = nullptr);

// True if `object` is libleakwatch itself.
bool IsAgentObject(const LoadedObject& object);

}  // namespace leakwatch

#endif  // LEAKWATCH_INTERPOSE_BIND_H_
