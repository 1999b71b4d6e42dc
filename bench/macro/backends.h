// bench/macro/backends.h - the allocators uzram-bench compares, each run in its own child
// process (a clean RSS baseline; jemalloc and mimalloc come in through LD_PRELOAD):
//   uzram         uzram::Pool, default options (TranslationMode::validated)
//   uzram-rwlock  uzram::Pool with TranslationMode::kernel_rwlock
//   malloc        malloc + memcpy / free through whatever malloc the process has
#ifndef UZRAM_BENCH_MACRO_BACKENDS_H_
#define UZRAM_BENCH_MACRO_BACKENDS_H_

#include <string>

#include "object_source.h"
#include "workload.h"

namespace uzram::bench {

// Runs the workload on `backend` ("uzram", "uzram-rwlock" or "malloc") in this process and
// returns the result as one JSON object (see backends.cc for the fields). Exits the process
// with a message on an allocation failure or a content mismatch.
std::string run_backend(const std::string& backend, const ObjectSource& source,
                        const WorkloadConfig& cfg);

bool is_backend_name(const std::string& name);

}  // namespace uzram::bench

#endif  // UZRAM_BENCH_MACRO_BACKENDS_H_
