// store/backing_dev.cc - the store's side of the backing device (layer 3): the backing_dev
// attribute (open and check with no lock held, install under init_lock_), sizing its
// allocator at init, closing it at reset, and reading or freeing a written-back slot's
// block. The device itself (open_backing, the allocator, its I/O calls) is backing.cc;
// the writeback command is writeback.cc. Rules: docs/store-postprocessing.md#backing-device.
#include <sys/stat.h>

#include <cstring>
#include <mutex>

#include "store/attr_table.h"
#include "store/backing.h"
#include "store/fail.h"
#include "store/store_impl.h"
#include "util/check.h"

namespace uzram {

// ---- backing_dev ------------------------------------------------------------------------

Result<void> attr::parse_backing_dev(const StoreImpl&, std::string_view text, AttrArg* out,
                                     std::string*) noexcept {
  out->text = std::string(text);  // "" or "none": no backing device
  return {};
}

// Opens and checks the file with no lock held (a FIFO or a slow file system must not stall
// the store), then installs it under init_lock_, re-checking that the store is still not
// initialised. Protocol: docs/store-postprocessing.md#backing-device.
Result<void> attr::write_backing_dev(StoreImpl& s, AttrArg& arg, std::string* msg) noexcept {
  const std::string& path = arg.text;
  {
    std::shared_lock l(s.init_lock_);
    if (s.disksize_) return fail(msg, Errc::busy, "backing_dev: device already initialised");
  }
  using Backing = StoreImpl::Backing;
  if (path.empty() || path == "none") {
    std::shared_ptr<Backing> old;  // closed after the lock is released
    std::unique_lock l(s.init_lock_);
    if (s.disksize_) return fail(msg, Errc::busy, "backing_dev: device already initialised");
    old = std::move(s.backing_);
    s.backing_path_.clear();
    return {};
  }
  std::string why;
  auto opened = open_backing(path, &why);
  struct stat st {};
  const bool busy_file = !opened && opened.error() == Errc::busy && ::lstat(path.c_str(), &st) == 0;
  std::shared_ptr<Backing> old;  // closed after the lock is released (declared before it)
  std::unique_lock l(s.init_lock_);
  if (s.disksize_) return fail(msg, Errc::busy, "backing_dev: device already initialised");
  if (s.retired_.load(std::memory_order_relaxed)) return s.retired_error("backing_dev", msg);
  if (!opened) {
    // The flock is this store's own when it already holds the same file: keep that one.
    if (busy_file && s.backing_ && S_ISREG(st.st_mode) && st.st_dev == s.backing_->dev &&
        st.st_ino == s.backing_->ino) {
      return {};
    }
    return fail(msg, opened.error(), std::move(why));
  }
  try {
    std::string shown = (*opened)->path;
    std::shared_ptr<Backing> b(std::move(opened).value());  // on bad_alloc it is deleted
    old = std::move(s.backing_);
    s.backing_ = std::move(b);
    s.backing_path_ = std::move(shown);
  } catch (...) {
    return fail(msg, Errc::no_memory, "backing_dev: out of memory");
  }
  return {};
}

Result<void> StoreImpl::backing_open_locked(std::string* msg) noexcept {
  if (!backing_) return {};
  return backing_->init_blocks(nslots_, msg);
}

void StoreImpl::backing_close_locked() noexcept {
  if (backing_) {
    ZS_DCHECK(backing_->used == 0, "backing device closed with %llu blocks in use",
              static_cast<unsigned long long>(backing_->used));
  }
  backing_.reset();  // closes the fd and drops its flock
}

// ---- backing blocks of written-back slots -------------------------------------------------

void StoreImpl::free_backing_block(std::uint64_t block) noexcept {
  ZS_CHECK(backing_, "a written-back slot without a backing device");
  backing_->release(block & kWbBlockMask);
}

Result<void> StoreImpl::read_backing_block(Slot& s, std::uint64_t block, void* out) noexcept {
  ZS_CHECK(backing_, "a written-back slot without a backing device");
  Backing& b = *backing_;
  const std::uint32_t f = s.get();
  alignas(4096) unsigned char buf[kBlockSize];
  const bool compressed = f & slotf::kWbCompressed;
  void* dst = compressed || b.direct.load(std::memory_order_relaxed) ? buf : out;
  stats_.bd_reads.fetch_add(1, std::memory_order_relaxed);
  const auto off = static_cast<off_t>((block & kWbBlockMask) * kBlockSize);
  if (backing_pread(b, dst, kBlockSize, off) != 0) {
    return Errc::io_error;
  }
  if (compressed) {
    const auto len = static_cast<std::size_t>(block >> kWbLenShift);
    Stream& st = streams_[s.prio()].get();
    auto r = st.codec->decompress(buf, len, out, kBlockSize);
    StreamPool::put(st);
    return r;
  }
  if (dst != out) std::memcpy(out, buf, kBlockSize);
  return {};
}

}  // namespace uzram
