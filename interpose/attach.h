// `leakwatch attach PID`: the agent loaded into a running process.
//
// The attaching command (attach/) makes a thread of the process call
// dlopen(libleakwatch.so, RTLD_NOW | RTLD_LOCAL) and then
// leakwatch_attach(options). Loaded that way the agent is not in the
// process's global scope, so nothing reaches the hooks by symbol lookup:
// the import slots (GOT entries) of every loaded module that name a hooked
// function are pointed at the hooks (bind.h, the mechanism the RTLD_DEEPBIND
// modules use), their old values kept, and written back by `leakwatch
// detach`. Between sessions the agent is inert: every hook passes straight
// through (a pointer to a hook that dlsym handed out during a session may
// still be called), and the library stays loaded.
//
// The work of a session's start and end runs on a thread of the agent's own,
// never on the thread the command stopped: the stopped thread only starts
// it (leakwatch_attach and leakwatch_control return at once), and the
// command waits by reading leakwatch_agent_state.
//
// Modules loaded during a session are redirected by the dlopen hook once
// their load has returned, and any other new module (a load the hook did not
// see) by the watchdog, the scan after it was first seen (a module mid-load
// must not have its relocation-read-only pages touched).
#ifndef LEAKWATCH_INTERPOSE_ATTACH_H_
#define LEAKWATCH_INTERPOSE_ATTACH_H_

#include <atomic>
#include <cstdint>

extern "C" {
// Read by the attaching command from outside (process_vm_readv), at the
// address of this exported symbol; layout version kAgentStateVersion.
struct LeakwatchAgentState {
  uint32_t magic;          // kAgentStateMagic once the agent has started
  uint32_t version;        // of this layout
  uint32_t mode;           // AgentMode
  uint32_t state;          // AttachState
  uint32_t sessions;       // attach sessions begun
  uint32_t reports;        // `leakwatch report`s written
  uint32_t slots;          // import slots pointing at the hooks now
  uint32_t failed_slots;   // slots that could not be written
  uint32_t modules;        // modules with a slot redirected
  uint32_t detach_failed;  // slots that could not be written back
  uint64_t work_ns;        // how long the last start or end took
  char message[256];       // why the last request failed
};
}

namespace leakwatch {

inline constexpr uint32_t kAgentStateMagic = 0x5341574c;  // "LWAS"
inline constexpr uint32_t kAgentStateVersion = 1;

enum AgentMode : uint32_t {
  kModeUnknown = 0,
  kModePreloaded = 1,  // LD_PRELOAD (or in the global scope otherwise)
  kModeAttached = 2,   // loaded by `leakwatch attach`
};

enum AttachState : uint32_t {
  kStateInert = 0,  // loaded, never attached
  kStateAttaching = 1,
  kStateAttached = 2,
  kStateDetaching = 3,
  kStateDetached = 4,  // inert again
  kStateFailed = 5,    // the last request failed (message says why)
};

// leakwatch_control's commands.
enum AttachCommand : int {
  kCommandReport = 1,
  kCommandDetach = 2,
};

// From the agent's constructor: decides the mode. In an agent loaded by
// `leakwatch attach`, notes the modules loaded now (complete: the loader's
// lock is held while constructors run) and returns true: nothing else is
// to start.
bool StartedByAttach();

// True while an agent loaded by `leakwatch attach` is outside a session:
// hooks pass through, the exit report is not written. One relaxed load.
extern std::atomic<bool> g_agent_inert;
inline bool AgentInert() {
  return g_agent_inert.load(std::memory_order_relaxed);
}

// True in an agent loaded by `leakwatch attach` (whether attached now or not).
bool LoadedByAttach();

// In a session: the modules loaded since the last look are redirected. From
// the dlopen hook once the real dlopen returned (`loaded`: the dynamic
// section of the module it loaded, which is complete; its dependencies wait
// for a scan, as a load on another thread may be under way), and from the
// watchdog after each scan (null).
void RedirectNewModules(const void* loaded);

}  // namespace leakwatch

#endif  // LEAKWATCH_INTERPOSE_ATTACH_H_
