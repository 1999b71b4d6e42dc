// uzram-store-bench's unit modes (store_bench_units.cc).
#ifndef UZRAM_BENCH_MACRO_STORE_BENCH_UNITS_H_
#define UZRAM_BENCH_MACRO_STORE_BENCH_UNITS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace uzram_bench {

// --units: per algorithm and unit size (bytes; the first is the baseline of the ratios),
// fill and read throughput, compr_data_size, mem_used_total and the pool's overhead.
void run_units(const std::vector<unsigned char>& pages, const std::vector<std::string>& algos,
               const std::vector<std::size_t>& units, int repeat);
// --partial: per unit size and unit_policy, random 4 KiB writes and reads (`ops` each) and
// a sequential 4 KiB rewrite of a store filled with whole units; memory after each.
void run_partial(const std::vector<unsigned char>& pages, const std::string& algo,
                 const std::vector<std::size_t>& units, const std::vector<std::string>& policies,
                 std::size_t ops, std::uint64_t seed);

}  // namespace uzram_bench

#endif  // UZRAM_BENCH_MACRO_STORE_BENCH_UNITS_H_
