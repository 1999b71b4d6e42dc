// store/codec_lzo.cc - lzo: liblzo2's LZO1X-1 compressor (work memory owned by the Codec)
// and its bounds-checked decompressor, lzo1x_decompress_safe. No level, no dictionary.
#include <lzo/lzo1x.h>

#include <cstring>
#include <new>

#include "store/codec_internal.h"
#include "sync/lock_order.h"

namespace uzram::codec_internal {
namespace {

// LZO1X-1 output never exceeds this (liblzo2's documented worst case); the compressor does
// not check its output bound, so it must always be given this much room.
constexpr std::size_t lzo_bound(std::size_t n) noexcept { return n + n / 16 + 64 + 3; }

bool lzo_ready() noexcept {
  static const bool ok = lzo_init() == LZO_E_OK;  // once, thread-safe
  return ok;
}

class LzoCodec final : public Codec {
 public:
  LzoCodec() noexcept = default;
  LzoCodec(const LzoCodec&) = delete;
  LzoCodec& operator=(const LzoCodec&) = delete;

  Result<void> init() noexcept {
    work_.reset(new (std::nothrow) unsigned char[LZO1X_1_MEM_COMPRESS]);
    if (!work_) return Errc::no_memory;
    return {};
  }

  std::string_view name() const noexcept override { return "lzo"; }

  Result<std::size_t> compress(const void* src, std::size_t src_len, void* dst,
                               std::size_t dst_cap) noexcept override {
    might_sleep();
    const auto* s = static_cast<const unsigned char*>(src);
    const std::size_t bound = lzo_bound(src_len);
    lzo_uint out_len = 0;
    if (dst_cap >= bound) {
      if (lzo1x_1_compress(s, src_len, static_cast<unsigned char*>(dst), &out_len, work_.get()) !=
          LZO_E_OK) {
        return Errc::codec_failed;
      }
      return static_cast<std::size_t>(out_len);
    }
    // dst may be too small for the worst case: compress into scratch, copy if it fits.
    if (scratch_cap_ < bound) {
      scratch_.reset(new (std::nothrow) unsigned char[bound]);
      scratch_cap_ = scratch_ ? bound : 0;
      if (!scratch_) return Errc::no_memory;
    }
    if (lzo1x_1_compress(s, src_len, scratch_.get(), &out_len, work_.get()) != LZO_E_OK ||
        out_len > dst_cap) {
      return Errc::codec_failed;
    }
    std::memcpy(dst, scratch_.get(), out_len);
    return static_cast<std::size_t>(out_len);
  }

  Result<void> decompress(const void* src, std::size_t src_len, void* dst,
                          std::size_t dst_len) noexcept override {
    might_sleep();
    if (src_len < 3) return Errc::codec_failed;  // shorter than the end marker alone
    lzo_uint out_len = dst_len;
    const int rc = lzo1x_decompress_safe(static_cast<const unsigned char*>(src), src_len,
                                         static_cast<unsigned char*>(dst), &out_len, nullptr);
    if (rc != LZO_E_OK || out_len != dst_len) return Errc::codec_failed;
    return {};
  }

 private:
  std::unique_ptr<unsigned char[]> work_;
  std::unique_ptr<unsigned char[]> scratch_;
  std::size_t scratch_cap_ = 0;
};

}  // namespace

Result<std::unique_ptr<Codec>> make_lzo() noexcept {
  if (!lzo_ready()) return Errc::codec_failed;
  auto* codec = new (std::nothrow) LzoCodec();
  if (codec == nullptr) return Errc::no_memory;
  std::unique_ptr<Codec> owner(codec);
  if (auto r = codec->init(); !r) return r.error();
  return owner;
}

}  // namespace uzram::codec_internal
