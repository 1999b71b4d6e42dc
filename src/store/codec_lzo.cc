// store/codec_lzo.cc - lzo: LZO1X version 0 with the kernel's match finder
// (lzo1x_compress.cc, so that page sizes match the kernel's; liblzo2's LZO1X-1 parses
// differently) and liblzo2's bounds-checked decompressor, lzo1x_decompress_safe. No level,
// no dictionary.
#include <lzo/lzo1x.h>

#include <new>

#include "store/codec_internal.h"
#include "sync/lock_order.h"

namespace uzram::codec_internal {
namespace {

bool lzo_ready() noexcept {
  static const bool ok = lzo_init() == LZO_E_OK;  // once, thread-safe
  return ok;
}

class LzoCodec final : public Lzo1xCodec {
 public:
  LzoCodec() noexcept : Lzo1xCodec(/*rle=*/false) {}

  std::string_view name() const noexcept override { return "lzo"; }

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
};

}  // namespace

Result<std::unique_ptr<Codec>> make_lzo() noexcept {
  if (!lzo_ready()) return Errc::codec_failed;
  std::unique_ptr<Codec> codec(new (std::nothrow) LzoCodec());
  if (!codec) return Errc::no_memory;
  return codec;
}

}  // namespace uzram::codec_internal
