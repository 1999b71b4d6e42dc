// nbd/request_pool.cc - a connection's preallocated requests and data buffers.
#include "nbd/request_pool.h"

#include <sys/mman.h>

#include "util/check.h"

namespace uzram::nbd {
namespace {

constexpr std::size_t kPage = 4096;
constexpr std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

}  // namespace

RequestPool::~RequestPool() {
  if (base_) ::munmap(base_, bytes_);
}

bool RequestPool::init(std::size_t jobs, std::size_t job_bytes, std::size_t pieces,
                       std::size_t piece_bytes) noexcept {
  ZS_CHECK(!base_, "RequestPool initialised twice");
  ZS_CHECK(jobs > 0 && pieces > 0 && piece_bytes > 0 && piece_bytes % kPage == 0 &&
               jobs < (std::size_t{1} << 31) && pieces < (std::size_t{1} << 31),
           "RequestPool: %zu jobs, %zu pieces of %zu bytes", jobs, pieces, piece_bytes);
  job_bytes = round_up(job_bytes, alignof(std::max_align_t));
  const std::size_t piece_area = pieces * piece_bytes;
  const std::size_t job_area = round_up(jobs * job_bytes, alignof(std::uint32_t));
  const std::size_t bytes = round_up(piece_area + job_area + (jobs + pieces) * 4, kPage);
  // MAP_POPULATE: resident now (and locked, under mlockall(MCL_FUTURE)), not at first use.
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) return false;
  base_ = static_cast<std::uint8_t*>(p);
  bytes_ = bytes;
  piece_bytes_ = piece_bytes;
  job_bytes_ = job_bytes;
  pieces_ = pieces;
  jobs_ = jobs;
  job_base_ = base_ + piece_area;
  free_piece_ = reinterpret_cast<std::uint32_t*>(job_base_ + job_area);
  free_job_ = free_piece_ + pieces;
  for (std::size_t i = 0; i < pieces; i++)
    free_piece_[i] = static_cast<std::uint32_t>(pieces - 1 - i);
  for (std::size_t i = 0; i < jobs; i++) free_job_[i] = static_cast<std::uint32_t>(jobs - 1 - i);
  free_pieces_ = pieces;
  free_jobs_ = jobs;
  return true;
}

void* RequestPool::take_job() noexcept {
  if (free_jobs_ == 0) return nullptr;
  return job_base_ + std::size_t{free_job_[--free_jobs_]} * job_bytes_;
}

void RequestPool::put_job(void* job) noexcept {
  const auto off = static_cast<std::size_t>(static_cast<std::uint8_t*>(job) - job_base_);
  ZS_CHECK(off % job_bytes_ == 0 && off / job_bytes_ < jobs_ && free_jobs_ < jobs_,
           "RequestPool: job slot %p not from this pool", job);
  free_job_[free_jobs_++] = static_cast<std::uint32_t>(off / job_bytes_);
}

std::uint8_t* RequestPool::take_piece() noexcept {
  if (free_pieces_ == 0) return nullptr;
  return base_ + std::size_t{free_piece_[--free_pieces_]} * piece_bytes_;
}

void RequestPool::put_piece(std::uint8_t* piece) noexcept {
  const auto off = static_cast<std::size_t>(piece - base_);
  ZS_CHECK(off % piece_bytes_ == 0 && off / piece_bytes_ < pieces_ && free_pieces_ < pieces_,
           "RequestPool: piece %p not from this pool", static_cast<void*>(piece));
  free_piece_[free_pieces_++] = static_cast<std::uint32_t>(off / piece_bytes_);
}

}  // namespace uzram::nbd
