// store/backing_dev.cc - the store's side of the backing tier (layer 3): the backing_dev
// attribute (open or connect with no lock held, install under init_lock_), sizing its
// allocator at init, closing it at reset, and reading or freeing a written-back slot's
// bytes. The tiers are backing_file.cc and backing_nbd.cc; the allocator backing_alloc.cc;
// the writeback command writeback.cc. Rules: docs/store-postprocessing.md#backing-device.
#include <sys/stat.h>

#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include "store/attr_table.h"
#include "store/backing.h"
#include "store/backing_nbd.h"
#include "store/fail.h"
#include "store/nbd_link.h"
#include "store/store_impl.h"
#include "util/check.h"

namespace uzram {

using Backing = StoreImpl::Backing;

Result<std::unique_ptr<Backing>> open_backing(const std::string& value,
                                              const std::atomic<std::uint32_t>& timeout_ms,
                                              std::string* msg) noexcept {
  std::unique_ptr<Backing> b(new (std::nothrow) Backing);
  if (!b) {
    if (msg) *msg = "backing_dev: out of memory";
    return Errc::no_memory;
  }
  if (value.find('\0') == std::string::npos && nbdlink::is_uri(value)) {
    auto t = open_nbd_tier(value, timeout_ms, msg);
    if (!t) return t.error();
    b->tier = std::move(t).value();
  } else {
    auto t = open_file_tier(value, msg);
    if (!t) return t.error();
    b->tier = std::move(t).value();
  }
  return b;
}

Result<void> Backing::init_blocks(std::uint64_t nslots, std::string* msg) noexcept {
  // Never more blocks in use than slots (a raw page takes one, packed objects less), plus
  // block 0.
  const std::uint64_t n = std::min<std::uint64_t>(tier->size_blocks(), nslots + 1);
  if (auto r = alloc.init(n, tier->trims(), tier->tracks_loss()); !r) {
    if (msg) *msg = "backing_dev: cannot allocate the backing tier's block map";
    return r;
  }
  tier->attach(&alloc);
  return {};
}

// ---- backing_dev ------------------------------------------------------------------------

Result<void> attr::parse_backing_dev(const StoreImpl& s, std::string_view text, AttrArg* out,
                                     std::string* msg) noexcept {
  // A swap store must not ask the kernel for memory while it serves, and libnbd allocates
  // for every request (and a remote tier's socket buffers are the kernel's).
  if (s.options_.swap && text.find('\0') == std::string_view::npos && nbdlink::is_uri(text)) {
    if (msg) {
      *msg =
          "backing_dev: this store serves swap (--swap), and a remote backing tier "
          "allocates memory for every request it sends; give a local file or block "
          "device, or serve without --swap";
    }
    return Errc::invalid_argument;
  }
  out->text = std::string(text);  // "" or "none": no backing device
  return {};
}

// Opens and checks the file, or connects to the remote, with no lock held (a FIFO, a slow
// file system or network must not stall the store), then installs it under init_lock_,
// re-checking that the store is still not initialised. Protocol:
// docs/store-postprocessing.md#backing-device.
Result<void> attr::write_backing_dev(StoreImpl& s, AttrArg& arg, std::string* msg) noexcept {
  const std::string& value = arg.text;
  {
    ReaderLock l(s.init_lock_);
    if (s.disksize_) return fail(msg, Errc::busy, "backing_dev: device already initialised");
  }
  if (value.empty() || value == "none") {
    std::shared_ptr<Backing> old;  // closed after the lock is released
    WriterLock l(s.init_lock_);
    if (s.disksize_) return fail(msg, Errc::busy, "backing_dev: device already initialised");
    old = std::move(s.backing_);
    s.backing_path_.clear();
    return {};
  }
  std::string why;
  auto opened = open_backing(value, s.backing_timeout_ms_, &why);
  struct stat st {};
  const bool busy_file =
      !opened && opened.error() == Errc::busy && ::lstat(value.c_str(), &st) == 0;
  std::shared_ptr<Backing> old;  // closed after the lock is released (declared before it)
  std::shared_ptr<Backing> b;    // likewise, when it is not installed
  WriterLock l(s.init_lock_);
  if (s.disksize_) return fail(msg, Errc::busy, "backing_dev: device already initialised");
  if (s.retired_.load(std::memory_order_relaxed)) return s.retired_error("backing_dev", msg);
  if (!opened) {
    // The flock is this store's own when it already holds the same file: keep that one.
    if (busy_file && s.backing_ && s.backing_->tier->same_file(st)) return {};
    return fail(msg, opened.error(), std::move(why));
  }
  try {
    std::string shown = (*opened)->tier->shown();
    b.reset(std::move(opened).value().release());  // on bad_alloc it is deleted
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

// The caller drops the tier after releasing init_lock_: closing a file drops its flock,
// closing a remote joins its I/O thread (which may be in a request, up to its deadline).
std::shared_ptr<StoreImpl::Backing> StoreImpl::backing_close_locked() noexcept {
  if (backing_ && backing_->alloc.nblocks()) {
    ZS_DCHECK(backing_->alloc.used() == 0, "backing tier closed with %llu blocks in use",
              static_cast<unsigned long long>(backing_->alloc.used()));
  }
  return std::move(backing_);
}

// ---- written-back slots -------------------------------------------------------------------

void StoreImpl::free_backing_block(std::uint64_t handle) noexcept {
  ZS_CHECK(backing_, "a written-back slot without a backing device");
  backing_->alloc.sub_live(wb_decode(handle));
}

// Reads the block(s) holding the slot's bytes (only the aligned range around them: a
// packed object reads at most two blocks) and decompresses a packed object.
Result<void> StoreImpl::read_backing_block(Slot& s, std::uint64_t handle, void* out) noexcept {
  ZS_CHECK(backing_, "a written-back slot without a backing device");
  Backing& b = *backing_;
  const WbAddr a = wb_decode(handle);
  stats_.bd_reads.fetch_add(1, std::memory_order_relaxed);
  std::uint64_t gen;
  if (!b.alloc.readable(a, &gen)) {  // the remote lost it
    stats_.bd_read_failed.fetch_add(1, std::memory_order_relaxed);
    return Errc::io_error;
  }
  const std::uint64_t align = b.tier->read_align();
  const std::uint64_t first = a.byte_offset() / align * align;
  const std::uint64_t end = (a.byte_offset() + a.bytes() + align - 1) / align * align;
  alignas(4096) unsigned char buf[2 * kBlockSize];  // an object spans at most two blocks
  ZS_CHECK(end - first <= sizeof buf, "written-back object %llu+%u spans more than 2 blocks",
           static_cast<unsigned long long>(a.byte_offset()), a.bytes());
  if (b.tier->read(buf, end - first, first, gen) != 0) {
    stats_.bd_read_failed.fetch_add(1, std::memory_order_relaxed);
    return Errc::io_error;
  }
  const unsigned char* p = buf + (a.byte_offset() - first);
  if (a.raw()) {
    std::memcpy(out, p, kBlockSize);
    return {};
  }
  Stream& st = streams_[s.prio()].get();
  auto r = st.codec->decompress(p, a.len, out, kBlockSize);
  StreamPool::put(st);
  return r;
}

void StoreImpl::check_backing_invariants() const noexcept {
  if (!backing_ || !backing_->alloc.nblocks()) return;
  const BackingAlloc& al = backing_->alloc;
  std::vector<std::uint32_t> expect(al.nblocks(), 0);
  for_each_stored_slot(0, nslots_, [&](std::uint64_t i, Slot& s) {
    init_lock_.assert_held_shared();  // the analysis does not see into the lambda
    Slot& u = unit_lock(i);
    u.lock();
    s.held_by(u);
    const std::uint32_t f = s.get();
    const WbAddr a = wb_decode(s.handle.load(std::memory_order_relaxed));
    u.unlock();
    if (!(f & slotf::kWb)) return true;
    ZS_CHECK(a.block >= 1 && a.block + a.nblocks() <= al.nblocks(),
             "slot %llu: written back to block %llu of %llu", static_cast<unsigned long long>(i),
             static_cast<unsigned long long>(a.block),
             static_cast<unsigned long long>(al.nblocks()));
    ZS_CHECK(a.raw() ? !(f & slotf::kWbCompressed) && a.offset == 0 : (f & slotf::kWbCompressed),
             "slot %llu: WB_COMPRESSED disagrees with its length %u",
             static_cast<unsigned long long>(i), a.len);
    expect[a.block] += a.head_bytes();
    if (a.nblocks() == 2) expect[a.block + 1] += a.bytes() - a.head_bytes();
    return true;
  });
  al.check(expect.data());
}

}  // namespace uzram
