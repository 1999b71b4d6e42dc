// store/codec_lz4.cc - lz4 (level = acceleration) and lz4hc (level = HC level), both with
// an optional raw dictionary. A dictionary is loaded once into a template stream; every
// compression starts from a fresh copy of the template, so no state carries from one page
// to the next and each page decompresses on its own (LZ4_decompress_safe_usingDict).
#include <lz4.h>
#include <lz4hc.h>

#include <climits>
#include <cstring>
#include <new>

#include "store/codec_internal.h"
#include "sync/lock_order.h"

namespace uzram::codec_internal {
namespace {

constexpr std::size_t kLz4WindowBytes = std::size_t{64} << 10;

int clamp_int(std::size_t n) noexcept {
  return n > static_cast<std::size_t>(INT_MAX) ? INT_MAX : static_cast<int>(n);
}

// Keeps only the last 64 KiB of a dictionary: all lz4 can reference.
DictBuffer trim_to_window(DictBuffer dict) noexcept {
  if (dict.size <= kLz4WindowBytes) return dict;
  std::memmove(dict.data.get(), dict.data.get() + dict.size - kLz4WindowBytes, kLz4WindowBytes);
  dict.size = kLz4WindowBytes;
  return dict;
}

// Decompression shared by lz4 and lz4hc (same block format).
Result<void> lz4_decompress(const DictBuffer& dict, const void* src, std::size_t src_len, void* dst,
                            std::size_t dst_len) noexcept {
  if (src_len > static_cast<std::size_t>(INT_MAX) || dst_len > static_cast<std::size_t>(INT_MAX)) {
    return Errc::codec_failed;
  }
  const auto* s = static_cast<const char*>(src);
  auto* d = static_cast<char*>(dst);
  const int n =
      dict.size == 0
          ? LZ4_decompress_safe(s, d, static_cast<int>(src_len), static_cast<int>(dst_len))
          : LZ4_decompress_safe_usingDict(
                s, d, static_cast<int>(src_len), static_cast<int>(dst_len),
                reinterpret_cast<const char*>(dict.data.get()), static_cast<int>(dict.size));
  if (n < 0 || static_cast<std::size_t>(n) != dst_len) return Errc::codec_failed;
  return {};
}

class Lz4Codec final : public Codec {
 public:
  Lz4Codec(int acceleration, DictBuffer dict) noexcept
      : acceleration_(acceleration), dict_(trim_to_window(std::move(dict))) {}
  ~Lz4Codec() override {
    if (template_) LZ4_freeStream(template_);
    if (work_) LZ4_freeStream(work_);
  }
  Lz4Codec(const Lz4Codec&) = delete;
  Lz4Codec& operator=(const Lz4Codec&) = delete;

  Result<void> init() noexcept {
    if (dict_.size == 0) return {};
    template_ = LZ4_createStream();
    work_ = LZ4_createStream();
    if (!template_ || !work_) return Errc::no_memory;
    LZ4_loadDict(template_, reinterpret_cast<const char*>(dict_.data.get()),
                 static_cast<int>(dict_.size));
    return {};
  }

  std::string_view name() const noexcept override { return "lz4"; }

  Result<std::size_t> compress(const void* src, std::size_t src_len, void* dst,
                               std::size_t dst_cap) noexcept override {
    might_sleep();
    if (src_len > static_cast<std::size_t>(LZ4_MAX_INPUT_SIZE)) return Errc::codec_failed;
    const auto* s = static_cast<const char*>(src);
    auto* d = static_cast<char*>(dst);
    int n;
    if (dict_.size == 0) {
      n = LZ4_compress_fast(s, d, static_cast<int>(src_len), clamp_int(dst_cap), acceleration_);
    } else {
      std::memcpy(work_, template_, sizeof(*work_));
      n = LZ4_compress_fast_continue(work_, s, d, static_cast<int>(src_len), clamp_int(dst_cap),
                                     acceleration_);
    }
    if (n <= 0) return Errc::codec_failed;
    return static_cast<std::size_t>(n);
  }

  Result<void> decompress(const void* src, std::size_t src_len, void* dst,
                          std::size_t dst_len) noexcept override {
    might_sleep();
    return lz4_decompress(dict_, src, src_len, dst, dst_len);
  }
  bool decompress_is_stateless() const noexcept override { return true; }
  std::size_t memory_bytes() const noexcept override {
    return sizeof(*this) + dict_.size + (template_ ? 2 * sizeof(LZ4_stream_t) : 0);
  }

 private:
  const int acceleration_;
  const DictBuffer dict_;
  LZ4_stream_t* template_ = nullptr;  // dictionary loaded; copied into work_ per page
  LZ4_stream_t* work_ = nullptr;
};

class Lz4hcCodec final : public Codec {
 public:
  Lz4hcCodec(int level, DictBuffer dict) noexcept
      : level_(level), dict_(trim_to_window(std::move(dict))) {}
  ~Lz4hcCodec() override {
    if (template_) LZ4_freeStreamHC(template_);
    if (work_) LZ4_freeStreamHC(work_);
  }
  Lz4hcCodec(const Lz4hcCodec&) = delete;
  Lz4hcCodec& operator=(const Lz4hcCodec&) = delete;

  Result<void> init() noexcept {
    work_ = LZ4_createStreamHC();
    if (!work_) return Errc::no_memory;
    if (dict_.size == 0) return {};
    template_ = LZ4_createStreamHC();
    if (!template_) return Errc::no_memory;
    LZ4_resetStreamHC_fast(template_, level_);  // a fresh stream: sets the level
    LZ4_loadDictHC(template_, reinterpret_cast<const char*>(dict_.data.get()),
                   static_cast<int>(dict_.size));
    return {};
  }

  std::string_view name() const noexcept override { return "lz4hc"; }

  Result<std::size_t> compress(const void* src, std::size_t src_len, void* dst,
                               std::size_t dst_cap) noexcept override {
    might_sleep();
    if (src_len > static_cast<std::size_t>(LZ4_MAX_INPUT_SIZE)) return Errc::codec_failed;
    const auto* s = static_cast<const char*>(src);
    auto* d = static_cast<char*>(dst);
    int n;
    if (dict_.size == 0) {
      // work_ serves as the state: extStateHC re-initialises it for every page.
      n = LZ4_compress_HC_extStateHC(work_, s, d, static_cast<int>(src_len), clamp_int(dst_cap),
                                     level_);
    } else {
      std::memcpy(work_, template_, sizeof(*work_));
      n = LZ4_compress_HC_continue(work_, s, d, static_cast<int>(src_len), clamp_int(dst_cap));
    }
    if (n <= 0) return Errc::codec_failed;
    return static_cast<std::size_t>(n);
  }

  Result<void> decompress(const void* src, std::size_t src_len, void* dst,
                          std::size_t dst_len) noexcept override {
    might_sleep();
    return lz4_decompress(dict_, src, src_len, dst, dst_len);
  }
  bool decompress_is_stateless() const noexcept override { return true; }
  std::size_t memory_bytes() const noexcept override {
    return sizeof(*this) + dict_.size +
           ((template_ ? 1 : 0) + (work_ ? 1 : 0)) * sizeof(LZ4_streamHC_t);
  }

 private:
  const int level_;
  const DictBuffer dict_;
  LZ4_streamHC_t* template_ = nullptr;  // level set, dictionary loaded
  LZ4_streamHC_t* work_ = nullptr;
};

template <typename C>
Result<std::unique_ptr<Codec>> finish(C* codec) noexcept {
  if (codec == nullptr) return Errc::no_memory;
  std::unique_ptr<Codec> owner(codec);
  if (auto r = codec->init(); !r) return r.error();
  return owner;
}

}  // namespace

Result<std::unique_ptr<Codec>> make_lz4(const CodecSpec& spec, DictBuffer dict) noexcept {
  const int accel = spec.has_level ? spec.level : kLz4DefaultAcceleration;
  return finish(new (std::nothrow) Lz4Codec(accel, std::move(dict)));
}

Result<std::unique_ptr<Codec>> make_lz4hc(const CodecSpec& spec, DictBuffer dict) noexcept {
  const int level = spec.has_level ? spec.level : LZ4HC_CLEVEL_DEFAULT;
  return finish(new (std::nothrow) Lz4hcCodec(level, std::move(dict)));
}

}  // namespace uzram::codec_internal
