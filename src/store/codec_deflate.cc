// store/codec_deflate.cc - deflate through zlib: one z_stream for each direction, made once
// and reset per page (deflateReset/inflateReset). Raw deflate by default (negative
// windowBits); positive winbits select the zlib wrapper (header + Adler-32). No dictionary.
#include <zlib.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <new>

#include "store/codec_internal.h"
#include "sync/lock_order.h"

namespace uzram::codec_internal {
namespace {

constexpr int kMemLevel = 9;  // MAX_MEM_LEVEL, as the kernel's backend

// zlib refuses a raw 256-byte window (windowBits -8) and silently widens a wrapped one to
// 512 bytes (writing 9 in the header, which an inflater made with 8 then rejects): use 9
// for both directions, in both modes.
int effective_winbits(int winbits) noexcept {
  if (winbits == 0) return kDeflateDefaultWinbits;
  if (winbits == 8) return 9;
  if (winbits == -8) return -9;
  return winbits;
}

class DeflateCodec final : public Codec {
 public:
  DeflateCodec(int level, int winbits) noexcept : level_(level), winbits_(winbits) {}
  ~DeflateCodec() override {
    if (deflate_ready_) deflateEnd(&c_);
    if (inflate_ready_) inflateEnd(&d_);
  }
  DeflateCodec(const DeflateCodec&) = delete;
  DeflateCodec& operator=(const DeflateCodec&) = delete;

  Result<void> init() noexcept {
    for (z_stream* z : {&c_, &d_}) {  // zlib allocates through these: counted
      z->zalloc = &DeflateCodec::zalloc;
      z->zfree = &DeflateCodec::zfree;
      z->opaque = &allocated_;
    }
    const int rc = deflateInit2(&c_, level_, Z_DEFLATED, winbits_, kMemLevel, Z_DEFAULT_STRATEGY);
    if (rc == Z_MEM_ERROR) return Errc::no_memory;
    if (rc != Z_OK) return Errc::invalid_argument;
    deflate_ready_ = true;
    const int rd = inflateInit2(&d_, winbits_);
    if (rd == Z_MEM_ERROR) return Errc::no_memory;
    if (rd != Z_OK) return Errc::invalid_argument;
    inflate_ready_ = true;
    return {};
  }

  std::string_view name() const noexcept override { return "deflate"; }
  std::size_t memory_bytes() const noexcept override {
    return sizeof(*this) + allocated_ + out_.memory_bytes();
  }

  Result<std::size_t> compress(const void* src, std::size_t src_len, void* dst,
                               std::size_t dst_cap) noexcept override {
    might_sleep();
    if (src_len > UINT_MAX / 2) return Errc::codec_failed;
    const std::size_t bound = deflateBound(&c_, static_cast<uLong>(src_len));
    return out_.compress(bound, dst, dst_cap, [&](void* to, std::size_t cap) {
      return compress_into(src, src_len, to, cap);
    });
  }

  Result<void> decompress(const void* src, std::size_t src_len, void* dst,
                          std::size_t dst_len) noexcept override {
    might_sleep();
    if (src_len > UINT_MAX || dst_len > UINT_MAX) return Errc::codec_failed;
    if (inflateReset(&d_) != Z_OK) return Errc::codec_failed;
    d_.next_in = static_cast<Bytef*>(const_cast<void*>(src));
    d_.avail_in = static_cast<uInt>(src_len);
    d_.next_out = static_cast<Bytef*>(dst);
    d_.avail_out = static_cast<uInt>(dst_len);
    // The whole stream must decode, fill dst exactly, and use all of src.
    if (inflate(&d_, Z_FINISH) != Z_STREAM_END) return Errc::codec_failed;
    if (d_.total_out != dst_len || d_.avail_in != 0) return Errc::codec_failed;
    return {};
  }

 private:
  // zlib's allocator, counting into *opaque (the codec's allocated_). Each block carries
  // its size in front (16 bytes, keeping malloc's alignment).
  static voidpf zalloc(voidpf opaque, uInt items, uInt size) noexcept {
    const std::size_t n = std::size_t{items} * size;
    auto* p = static_cast<unsigned char*>(std::malloc(n + 16));
    if (!p) return Z_NULL;
    std::memcpy(p, &n, sizeof n);
    *static_cast<std::size_t*>(opaque) += n;
    return p + 16;
  }
  static void zfree(voidpf opaque, voidpf address) noexcept {
    if (!address) return;
    unsigned char* p = static_cast<unsigned char*>(address) - 16;
    std::size_t n;
    std::memcpy(&n, p, sizeof n);
    *static_cast<std::size_t*>(opaque) -= n;
    std::free(p);
  }

  Result<std::size_t> compress_into(const void* src, std::size_t src_len, void* dst,
                                    std::size_t dst_cap) noexcept {
    if (deflateReset(&c_) != Z_OK) return Errc::codec_failed;
    c_.next_in = static_cast<Bytef*>(const_cast<void*>(src));  // zlib does not write it
    c_.avail_in = static_cast<uInt>(src_len);
    c_.next_out = static_cast<Bytef*>(dst);
    c_.avail_out = dst_cap > UINT_MAX ? UINT_MAX : static_cast<uInt>(dst_cap);
    if (deflate(&c_, Z_FINISH) != Z_STREAM_END) return Errc::codec_failed;  // did not fit
    return static_cast<std::size_t>(c_.total_out);
  }

  const int level_;
  const int winbits_;
  z_stream c_{};
  z_stream d_{};
  std::size_t allocated_ = 0;  // by zlib, through zalloc (under the stream's mutex)
  bool deflate_ready_ = false;
  bool inflate_ready_ = false;
  codec_internal::BoundedOutput out_;  // capacities below the library's bound
};

}  // namespace

Result<std::unique_ptr<Codec>> make_deflate(const CodecSpec& spec) noexcept {
  const int level = spec.has_level ? spec.level : Z_DEFAULT_COMPRESSION;
  auto* codec = new (std::nothrow) DeflateCodec(level, effective_winbits(spec.deflate_winbits));
  if (codec == nullptr) return Errc::no_memory;
  std::unique_ptr<Codec> owner(codec);
  if (auto r = codec->init(); !r) return r.error();
  return owner;
}

}  // namespace uzram::codec_internal
