// store/codec_zstd.cc - zstd: one ZSTD_CCtx and one ZSTD_DCtx per Codec, made once; an
// optional dictionary (trained or raw content) digested once into a CDict/DDict at
// make_codec(). Every page is one self-contained zstd frame.
#include <zstd.h>

#include <cstring>
#include <new>

#include "store/codec_internal.h"
#include "sync/lock_order.h"

namespace uzram::codec_internal {

int zstd_min_level() noexcept { return ZSTD_minCLevel(); }
int zstd_max_level() noexcept { return ZSTD_maxCLevel(); }
// The kernel's default, ZSTD_defaultCLevel() (= ZSTD_CLEVEL_DEFAULT, 3).
int zstd_default_level() noexcept { return ZSTD_CLEVEL_DEFAULT; }

namespace {

class ZstdCodec final : public Codec {
 public:
  explicit ZstdCodec(int level) noexcept : level_(level) {}
  ~ZstdCodec() override {
    ZSTD_freeCCtx(cctx_);
    ZSTD_freeDCtx(dctx_);
    ZSTD_freeCDict(cdict_);
    ZSTD_freeDDict(ddict_);
  }
  ZstdCodec(const ZstdCodec&) = delete;
  ZstdCodec& operator=(const ZstdCodec&) = delete;

  Result<void> init(const DictBuffer& dict) noexcept {
    cctx_ = ZSTD_createCCtx();
    dctx_ = ZSTD_createDCtx();
    if (!cctx_ || !dctx_) return Errc::no_memory;
    if (dict.size == 0) return {};
    // Both copy the dictionary; the file's buffer can go after this.
    cdict_ = ZSTD_createCDict(dict.data.get(), dict.size, level_);
    ddict_ = ZSTD_createDDict(dict.data.get(), dict.size);
    if (!cdict_ || !ddict_) return Errc::bad_dictionary;
    return {};
  }

  std::string_view name() const noexcept override { return "zstd"; }

  Result<std::size_t> compress(const void* src, std::size_t src_len, void* dst,
                               std::size_t dst_cap) noexcept override {
    might_sleep();
    const std::size_t bound = ZSTD_compressBound(src_len);
    return out_.compress(bound, dst, dst_cap, [&](void* to, std::size_t cap) {
      return compress_into(src, src_len, to, cap);
    });
  }

  std::size_t memory_bytes() const noexcept override {
    return sizeof(*this) + out_.memory_bytes() + ZSTD_sizeof_CCtx(cctx_) + ZSTD_sizeof_DCtx(dctx_) +
           ZSTD_sizeof_CDict(cdict_) + ZSTD_sizeof_DDict(ddict_);
  }

  Result<void> decompress(const void* src, std::size_t src_len, void* dst,
                          std::size_t dst_len) noexcept override {
    might_sleep();
    const std::size_t n =
        ddict_ ? ZSTD_decompress_usingDDict(dctx_, dst, dst_len, src, src_len, ddict_)
               : ZSTD_decompressDCtx(dctx_, dst, dst_len, src, src_len);
    if (ZSTD_isError(n) || n != dst_len) return Errc::codec_failed;
    return {};
  }

 private:
  Result<std::size_t> compress_into(const void* src, std::size_t src_len, void* dst,
                                    std::size_t dst_cap) noexcept {
    const std::size_t n = cdict_
                              ? ZSTD_compress_usingCDict(cctx_, dst, dst_cap, src, src_len, cdict_)
                              : ZSTD_compressCCtx(cctx_, dst, dst_cap, src, src_len, level_);
    if (ZSTD_isError(n)) return Errc::codec_failed;
    return n;
  }

  const int level_;
  codec_internal::BoundedOutput out_;  // capacities below the library's bound
  ZSTD_CCtx* cctx_ = nullptr;
  ZSTD_DCtx* dctx_ = nullptr;
  ZSTD_CDict* cdict_ = nullptr;
  ZSTD_DDict* ddict_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<Codec>> make_zstd(const CodecSpec& spec, DictBuffer dict) noexcept {
  const int level = spec.has_level ? spec.level : zstd_default_level();
  auto* codec = new (std::nothrow) ZstdCodec(level);
  if (codec == nullptr) return Errc::no_memory;
  std::unique_ptr<Codec> owner(codec);
  if (auto r = codec->init(dict); !r) return r.error();
  return owner;
}

}  // namespace uzram::codec_internal
