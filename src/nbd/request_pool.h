// nbd/request_pool.h - RequestPool: a connection's requests and data buffers, allocated
// once when it enters transmission (uzram serve --swap, docs/uzram-serve.md#swap), so that
// serving its requests asks the heap, and so the kernel, for nothing.
//
// `jobs` request slots and `pieces` data buffers of piece_bytes each (4 KiB aligned: a
// piece also holds block status extents), in one mapping populated at init. A request takes
// one slot, and one piece when it carries or returns data; a READ or WRITE longer than a
// piece is served through one piece, piece by piece (nbd/session.cc). Free slots and pieces
// are stacks of indexes.
//
// Thread safety: none; the session calls it under its own mutex (Session::mu_).
#ifndef UZRAM_NBD_REQUEST_POOL_H_
#define UZRAM_NBD_REQUEST_POOL_H_

#include <cstddef>
#include <cstdint>

namespace uzram::nbd {

class RequestPool {
 public:
  RequestPool() noexcept = default;
  ~RequestPool();
  RequestPool(const RequestPool&) = delete;
  RequestPool& operator=(const RequestPool&) = delete;

  // Maps and populates everything; false when memory is short (nothing is kept).
  // piece_bytes: a multiple of 4096; jobs, pieces: at least 1.
  [[nodiscard]] bool init(std::size_t jobs, std::size_t job_bytes, std::size_t pieces,
                          std::size_t piece_bytes) noexcept;
  [[nodiscard]] bool ready() const noexcept { return base_ != nullptr; }

  // A free request slot of job_bytes (aligned for any object), or nullptr when all are
  // taken; back with put_job().
  [[nodiscard]] void* take_job() noexcept;
  void put_job(void* job) noexcept;
  // A free piece, or nullptr when all are taken; back with put_piece().
  [[nodiscard]] std::uint8_t* take_piece() noexcept;
  void put_piece(std::uint8_t* piece) noexcept;

  [[nodiscard]] bool has_job() const noexcept { return free_jobs_ > 0; }
  [[nodiscard]] bool has_piece() const noexcept { return free_pieces_ > 0; }
  [[nodiscard]] std::size_t piece_bytes() const noexcept { return piece_bytes_; }
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }  // all of it, mapped

 private:
  std::uint8_t* base_ = nullptr;  // pieces, then job slots, then the two index stacks
  std::size_t bytes_ = 0;
  std::size_t piece_bytes_ = 0, job_bytes_ = 0;
  std::size_t pieces_ = 0, jobs_ = 0;
  std::uint8_t* job_base_ = nullptr;
  std::uint32_t* free_piece_ = nullptr;  // stack of free piece indexes [0, free_pieces_)
  std::uint32_t* free_job_ = nullptr;    // stack of free job indexes [0, free_jobs_)
  std::size_t free_pieces_ = 0, free_jobs_ = 0;
};

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_REQUEST_POOL_H_
