// cli/swap.h - `uzram serve --swap` (docs/uzram-serve.md#swap): a server that may serve the
// kernel's swap without deadlocking on its own memory. Before any thread starts: small
// thread stacks (each is locked whole) and PR_SET_IO_FLUSHER (the kernel does not recurse
// into I/O, so into this server, to reclaim memory for its allocations; needs
// CAP_SYS_RESOURCE). Once the store is set up: mlockall(MCL_CURRENT | MCL_FUTURE), and a
// check that what will be locked (VmLck now, which counts the pool's whole reservation,
// mem_limit + kSwapPoolSlack, plus every connection's preallocated buffers and threads)
// fits RLIMIT_MEMLOCK (without CAP_IPC_LOCK), the memory cgroup's limit and the RAM.
#ifndef UZRAM_CLI_SWAP_H_
#define UZRAM_CLI_SWAP_H_

#include <cstdint>
#include <string>

#include "cli/cli.h"

namespace uzram::nbd {
struct ServerOptions;
}

namespace uzram::cli {

class LogSink;

// Thread stacks under --swap: mlockall(MCL_FUTURE) populates and locks a stack whole.
inline constexpr std::size_t kSwapStackBytes = std::size_t{256} << 10;
// At most this many connections at once under --swap (each locks its buffers and threads).
inline constexpr unsigned kSwapMaxConnections = 8;

// Preallocated sessions and fewer connections.
void swap_server_options(nbd::ServerOptions* so) noexcept;

// Before any thread starts. False after a report (exit 2).
bool swap_prepare(const Io& io) noexcept;

struct SwapBudget {
  std::uint64_t mem_limit = 0;       // bytes (for the messages: VmLck counts the pool)
  std::uint64_t per_connection = 0;  // buffers and thread stacks of one connection
  unsigned connections = 0;
  unsigned extra_threads = 0;  // threads still to start besides the connections'
};
// Before disksize (which populates the pool): what the store and the connections will take
// (the pool's mem_limit + kSwapPoolSlack, a 16-byte slot per block of `disksize`, every
// connection) must fit the room left in the memory cgroup (its limit less its usage, the
// tightest above us: populating beyond it would OOM-kill the server), RLIMIT_MEMLOCK with
// what is resident now (without CAP_IPC_LOCK) and the RAM. False after a report (exit 2).
bool swap_precheck(const SwapBudget& budget, std::uint64_t disksize, const Io& io) noexcept;
// After the store is configured and every thread started, before serving: locks the
// process's memory and checks the budget with what is locked then. False after a report
// (exit 2). Logs what is locked.
bool swap_lock(const SwapBudget& budget, const Io& io, LogSink& sink) noexcept;

// Facts about this process and machine, in bytes (0: unknown or none).
std::uint64_t locked_bytes() noexcept;    // VmLck
std::uint64_t resident_bytes() noexcept;  // VmRSS
// RLIMIT_MEMLOCK; UINT64_MAX: unlimited, or CAP_IPC_LOCK.
std::uint64_t memlock_limit() noexcept;
// The tightest memory cgroup limit above us (v2 or v1).
std::uint64_t cgroup_memory_limit() noexcept;
// The least room (limit - usage) of the memory cgroups above us; UINT64_MAX: no limit.
std::uint64_t cgroup_memory_room() noexcept;

}  // namespace uzram::cli

#endif  // UZRAM_CLI_SWAP_H_
