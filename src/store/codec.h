// store/codec.h - Codec: one compression context for one algorithm (layer 3, store).
// The kernel's zcomp backends, through Debian's libraries: lz4 (level = acceleration,
// dictionary), lz4hc (level, dictionary), zstd (level, dictionary), deflate (zlib; level,
// winbits), lzo (liblzo2), lzo-rle (the kernel's default; its own bitstream).
//
// Thread safety: a Codec is NOT thread-safe: it is one stream's private context (buffers,
// dictionaries). Create one per stream. make_codec() and codec_names() are thread-safe.
// Every call may block in the library (allocation): they call might_sleep() and must not
// run under a spinning lock.
#ifndef UZRAM_STORE_CODEC_H_
#define UZRAM_STORE_CODEC_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "uzram/result.h"

namespace uzram {

// What `algorithm_params` and `comp_algorithm` can say about one algorithm, with the
// kernel's names: `algo=NAME [level=N] [dict=PATH] [deflate.winbits=N]`.
struct CodecSpec {
  std::string name;        // kernel name: lz4, lz4hc, zstd, deflate, lzo, lzo-rle
  bool has_level = false;  // level unset = the library's default (kernel's default)
  int level = 0;
  std::string dict_path;  // empty = no dictionary
  // The dictionary's bytes, read once by read_dictionary(): make_codec() then opens no
  // file (the store reads it before taking any lock). Unset: make_codec() reads dict_path.
  std::shared_ptr<const std::string> dict;
  int deflate_winbits = 0;  // 0 = default (the kernel's: -11, raw deflate, 2 KiB window)
};

// Reads a dictionary file safely: O_NONBLOCK|O_NOCTTY|O_CLOEXEC (a FIFO never blocks the
// open), a regular file only (checked with stat() before opening, so a device node is
// never opened, and with fstat() after), not on a pseudo file system (proc, sysfs, ...),
// 1 byte to 16 MiB. Symbolic links are followed: dictionaries are only read, and often
// installed as links (e.g. under /usr/share). Errors: Errc::bad_dictionary with the reason
// in *msg ("dict=PATH: ..."), Errc::no_memory.
[[nodiscard]] Result<std::shared_ptr<const std::string>> read_dictionary(
    const std::string& path, std::string* msg = nullptr) noexcept;

class Codec {
 public:
  virtual ~Codec() = default;
  virtual std::string_view name() const noexcept = 0;
  // Compresses src[0..src_len) into dst (capacity dst_cap, at least 2 * src_len).
  // Returns the compressed length. Errors: Errc::codec_failed.
  [[nodiscard]] virtual Result<std::size_t> compress(const void* src, std::size_t src_len,
                                                     void* dst, std::size_t dst_cap) noexcept = 0;
  // Decompresses src[0..src_len) into dst, which must come out exactly dst_len bytes.
  // Errors: Errc::codec_failed (corrupt input: never crashes, never writes past dst_len).
  [[nodiscard]] virtual Result<void> decompress(const void* src, std::size_t src_len, void* dst,
                                                std::size_t dst_len) noexcept = 0;
  // Units (docs/units.md#partial-decoding): compress() of src_len bytes cut after every
  // `piece` bytes (a divisor of src_len), so that decompress_prefix() can stop at a piece's
  // end. The output is one stream decompress() reads as ever. Default: compress().
  [[nodiscard]] virtual Result<std::size_t> compress_pieces(const void* src, std::size_t src_len,
                                                            void* dst, std::size_t dst_cap,
                                                            std::size_t piece) noexcept {
    (void)piece;
    return compress(src, src_len, dst, dst_cap);
  }
  // Decompresses src[0..src_len) (whose whole output is dst_len bytes) into dst until at
  // least `need` (1..dst_len) bytes of dst are final; returns how many are (need..dst_len;
  // dst_len: all of it, checked as decompress() checks). Errors: Errc::codec_failed. The
  // default decompresses everything.
  [[nodiscard]] virtual Result<std::size_t> decompress_prefix(const void* src, std::size_t src_len,
                                                              void* dst, std::size_t dst_len,
                                                              std::size_t need) noexcept {
    (void)need;
    if (auto r = decompress(src, src_len, dst, dst_len); !r) return r.error();
    return dst_len;
  }
  // The bytes final after the last decompress_prefix() that stopped early, while no other
  // call of this codec decompressed anything since; else 0. decompress_more() continues it.
  virtual std::size_t prefix_done() const noexcept { return 0; }
  // Continues that decompression, its src and dst unchanged since, until at least `need`
  // bytes are final; returns how many are. Errors: Errc::codec_failed (also when
  // prefix_done() is 0).
  [[nodiscard]] virtual Result<std::size_t> decompress_more(std::size_t need) noexcept {
    (void)need;
    return Errc::codec_failed;
  }
  // True when decompress() touches no mutable state of the codec (lz4, lz4hc, lzo,
  // lzo-rle): any number of threads may then call it on one instance at once, even while
  // another thread compresses with it. The store's reads then skip the stream lock.
  virtual bool decompress_is_stateless() const noexcept { return false; }
  // Bytes this codec holds, itself included (contexts, work memory, its own copies of a
  // dictionary; not a dictionary buffer shared with other codecs). Same thread rules as
  // compress().
  virtual std::size_t memory_bytes() const noexcept = 0;
  // Gives back the memory the codec's contexts gathered by use (work spaces, decoder
  // state, scratch buffers), keeping what it was built with (level, dictionaries): the next
  // call sizes them again, as a codec's first call does. The contexts are made anew before
  // the old ones go, so nothing fails later for this: false (nothing given back) when that
  // cannot be allocated. Same thread rules as compress(); never frees what decompress()
  // uses where decompress_is_stateless() (other threads decompress with it unlocked).
  // Default (codecs whose state is fixed at creation): nothing to give back, false.
  virtual bool release_memory() noexcept { return false; }
  // Whether release_memory() can give anything back (StreamPool sweeps only streams that
  // hold something to give: a unit store's buffers, or such a codec).
  virtual bool can_release_memory() const noexcept { return false; }
};

// Validates a spec and builds a codec. Errors (the callers word the message): unknown
// algorithm name (Errc::unknown_codec), level out of the algorithm's range (bad_level),
// dictionary unreadable, refused by the library or on an algorithm without dictionary
// support (bad_dictionary), deflate.winbits out of range (invalid_argument), no memory.
[[nodiscard]] Result<std::unique_ptr<Codec>> make_codec(const CodecSpec& spec) noexcept;

// Algorithms built in, in the kernel's listing order (lzo-rle first).
std::vector<std::string> codec_names() noexcept;
bool codec_known(std::string_view name) noexcept;

}  // namespace uzram

#endif  // UZRAM_STORE_CODEC_H_
