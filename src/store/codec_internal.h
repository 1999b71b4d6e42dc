// store/codec_internal.h - private to the codec files (codec.cc, codec_*.cc) and their tests:
// the per-family factories make_codec() dispatches to, the dictionary loader, and the
// lzo-rle bitstream functions (exposed so tests can check the format against liblzo2).
#ifndef UZRAM_STORE_CODEC_INTERNAL_H_
#define UZRAM_STORE_CODEC_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "store/codec.h"

namespace uzram::codec_internal {

// A dictionary file's bytes (never empty once loaded).
struct DictBuffer {
  std::unique_ptr<unsigned char[]> data;
  std::size_t size = 0;
};

// Largest dictionary file accepted (zstd dictionaries are typically ~100 KiB; lz4 uses
// only the last 64 KiB).
inline constexpr std::size_t kMaxDictionaryBytes = std::size_t{16} << 20;

// Reads a whole regular file with read_dictionary() (codec.h). Errors: Errc::bad_dictionary
// (missing, unreadable, not a regular file, empty, larger than kMaxDictionaryBytes),
// Errc::no_memory.
[[nodiscard]] Result<DictBuffer> load_dictionary(const std::string& path) noexcept;
// A codec's private copy of bytes read once (CodecSpec::dict). Errors: Errc::no_memory.
[[nodiscard]] Result<DictBuffer> copy_dictionary(const std::string& bytes) noexcept;

// Factories. The spec has been validated by make_codec() (name, level range, dictionary
// support, winbits); `dict` is empty when the spec has no dictionary.
// Errors: Errc::bad_dictionary (the library refused the dictionary), Errc::no_memory.
[[nodiscard]] Result<std::unique_ptr<Codec>> make_lz4(const CodecSpec& spec,
                                                      DictBuffer dict) noexcept;
[[nodiscard]] Result<std::unique_ptr<Codec>> make_lz4hc(const CodecSpec& spec,
                                                        DictBuffer dict) noexcept;
[[nodiscard]] Result<std::unique_ptr<Codec>> make_zstd(const CodecSpec& spec,
                                                       DictBuffer dict) noexcept;
[[nodiscard]] Result<std::unique_ptr<Codec>> make_deflate(const CodecSpec& spec) noexcept;
[[nodiscard]] Result<std::unique_ptr<Codec>> make_lzo() noexcept;
[[nodiscard]] Result<std::unique_ptr<Codec>> make_lzo_rle() noexcept;

// Level ranges and defaults (the kernel's semantics, see docs/codecs.md).
inline constexpr int kLz4DefaultAcceleration = 1;
inline constexpr int kLz4MaxAcceleration = 65537;  // LZ4_ACCELERATION_MAX (lz4.c)
inline constexpr int kLz4hcMinLevel = 1;
inline constexpr int kLz4hcMaxLevel = 12;  // LZ4HC_CLEVEL_MAX
inline constexpr int kDeflateMinLevel = 1;
inline constexpr int kDeflateMaxLevel = 9;
inline constexpr int kDeflateDefaultWinbits = -11;  // the kernel's DEFLATE_DEF_WINBITS
int zstd_min_level() noexcept;
int zstd_max_level() noexcept;
int zstd_default_level() noexcept;

// For libraries that need room beyond their final output (zlib, zstd): compresses straight
// into dst when dst_cap reaches the library's worst case `bound`, else into a scratch
// buffer (kept for the next call) and copies, so any capacity the output fits in works.
class BoundedOutput {
 public:
  template <typename CompressInto>
  Result<std::size_t> compress(std::size_t bound, void* dst, std::size_t dst_cap,
                               CompressInto&& compress_into) noexcept {
    if (dst_cap >= bound) return compress_into(dst, dst_cap);
    if (cap_ < bound) {
      scratch_.reset(new (std::nothrow) unsigned char[bound]);
      cap_ = scratch_ ? bound : 0;
      if (!scratch_) return Errc::no_memory;
    }
    auto n = compress_into(scratch_.get(), bound);
    if (!n || *n > dst_cap) return Errc::codec_failed;
    std::memcpy(dst, scratch_.get(), *n);
    return n;
  }

 private:
  std::unique_ptr<unsigned char[]> scratch_;
  std::size_t cap_ = 0;

 public:
  std::size_t memory_bytes() const noexcept { return scratch_ ? cap_ : 0; }
  void release() noexcept {  // the scratch buffer goes; the next short capacity allocates
    scratch_.reset();
    cap_ = 0;
  }
};

// The lzo-rle bitstream (LZO1X; version 1 adds the zero-run instruction).
namespace lzo_rle {

// Scratch memory compress() needs (its match-finder hash table).
inline constexpr std::size_t kWorkBytes = std::size_t{1} << 14;

// Compresses src[0..n) into dst (capacity cap). rle = true writes an lzo-rle stream
// (marker 17, version 1, zero runs as RLE instructions); rle = false writes a plain
// LZO1X stream that liblzo2's lzo1x_decompress_safe() reads. `work` holds kWorkBytes,
// suitably aligned for std::uint32_t. Returns the compressed length, or 0 when dst is
// too small (or n >= 2^32).
std::size_t compress(const unsigned char* src, std::size_t n, unsigned char* dst, std::size_t cap,
                     void* work, bool rle) noexcept;

// Decodes an LZO1X stream, version 0 or 1 (as the kernel's lzo1x_decompress_safe does),
// into exactly dst_len bytes. Returns false on any malformed input, a stream that
// decodes to a different length, or trailing bytes; never reads or writes out of bounds.
bool decompress(const unsigned char* src, std::size_t n, unsigned char* dst,
                std::size_t dst_len) noexcept;

}  // namespace lzo_rle

// What the lzo and lzo-rle codecs share: compression with lzo_rle::compress (version 0 or
// 1) and its work memory, and a decompressor that touches no state. Each adds its name
// and its decoder.
class Lzo1xCodec : public Codec {
 public:
  Result<std::size_t> compress(const void* src, std::size_t src_len, void* dst,
                               std::size_t dst_cap) noexcept final;
  bool decompress_is_stateless() const noexcept final { return true; }
  std::size_t memory_bytes() const noexcept final { return sizeof(*this); }  // work_ inside

 protected:
  explicit Lzo1xCodec(bool rle) noexcept : rle_(rle) {}

 private:
  const bool rle_;
  alignas(std::uint32_t) unsigned char work_[lzo_rle::kWorkBytes];
};

}  // namespace uzram::codec_internal

#endif  // UZRAM_STORE_CODEC_INTERNAL_H_
