// store/codec_zstd.cc - zstd: one ZSTD_CCtx and one ZSTD_DCtx per Codec, made once; an
// optional dictionary (trained or raw content) digested once into a CDict/DDict at
// make_codec(). Every page is one self-contained zstd frame. A unit compressed in pieces
// (compress_pieces) is one frame whose blocks end at the pieces' ends: its prefix is
// decoded block by block with the buffer-less decoder (decompress_prefix, _more).
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_c_stable*Buffer and the buffer-less decoder
#include <sys/mman.h>
#include <zstd.h>

#include <cstring>
#include <new>

#include "store/codec_internal.h"
#include "sync/lock_order.h"
#include "util/resident.h"

namespace uzram::codec_internal {

int zstd_min_level() noexcept { return ZSTD_minCLevel(); }
int zstd_max_level() noexcept { return ZSTD_maxCLevel(); }
// The kernel's default, ZSTD_defaultCLevel() (= ZSTD_CLEVEL_DEFAULT, 3).
int zstd_default_level() noexcept { return ZSTD_CLEVEL_DEFAULT; }

namespace {

// zstd's allocations for one codec's contexts, each its own mapping (a handful: the
// contexts and their work spaces), so that memory_bytes() counts the pages that are resident
// (a context's work space is sized for the largest input, and a page's compression or a
// decoder never used touches little of it), and a freed work space goes straight back to
// the kernel. Used under the codec's user's lock (the stream's mutex), as the codec is.
class ZstdMemory {
 public:
  ZSTD_customMem custom() noexcept { return {&ZstdMemory::alloc, &ZstdMemory::release, this}; }
  std::size_t resident() const noexcept {
    std::size_t bytes = untracked_;
    for (const Block& b : blocks_) bytes += resident_bytes_of(b.p, b.n);
    return bytes;
  }

 private:
  static constexpr std::size_t kHeader = 64;  // the mapping's length; keeps 64-byte alignment
  struct Block {
    void* p = nullptr;
    std::size_t n = 0;
  };
  static void* alloc(void* opaque, std::size_t size) noexcept {
    auto* m = static_cast<ZstdMemory*>(opaque);
    const std::size_t n = kHeader + size;
    void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    *static_cast<std::size_t*>(p) = n;
    void* const data = static_cast<unsigned char*>(p) + kHeader;
    for (Block& b : m->blocks_) {
      if (b.p == nullptr) {
        b = {p, n};
        return data;
      }
    }
    m->untracked_ += n;  // beyond the table: counted whole
    return data;
  }
  static void release(void* opaque, void* address) noexcept {
    if (address == nullptr) return;
    auto* m = static_cast<ZstdMemory*>(opaque);
    void* p = static_cast<unsigned char*>(address) - kHeader;
    const std::size_t n = *static_cast<std::size_t*>(p);
    bool tracked = false;
    for (Block& b : m->blocks_) {
      if (b.p == p) {
        b = {};
        tracked = true;
      }
    }
    if (!tracked) m->untracked_ -= n;
    ::munmap(p, n);
  }

  Block blocks_[8];
  std::size_t untracked_ = 0;
};

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
    cctx_ = ZSTD_createCCtx_advanced(mem_.custom());
    dctx_ = ZSTD_createDCtx_advanced(mem_.custom());
    if (!cctx_ || !dctx_) return Errc::no_memory;
    if (dict.size == 0) return {};
    // Both copy the dictionary; the file's buffer can go after this. (malloc'd: digested
    // whole, so resident whole; ZSTD_createCDict also records the level for large inputs.)
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
    return sizeof(*this) + out_.memory_bytes() + mem_.resident() + ZSTD_sizeof_CDict(cdict_) +
           ZSTD_sizeof_DDict(ddict_);
  }

  // Fresh contexts (each a small mapping until used) replace the old ones with their work
  // spaces: the next compress() or decompress() sizes its own again.
  bool can_release_memory() const noexcept override { return true; }
  bool release_memory() noexcept override {
    ZSTD_CCtx* const c = ZSTD_createCCtx_advanced(mem_.custom());
    ZSTD_DCtx* const d = ZSTD_createDCtx_advanced(mem_.custom());
    if (!c || !d) {
      ZSTD_freeCCtx(c);
      ZSTD_freeDCtx(d);
      return false;
    }
    ZSTD_freeCCtx(cctx_);
    ZSTD_freeDCtx(dctx_);
    cctx_ = c;
    dctx_ = d;
    prefix_ = {};  // nothing to continue
    out_.release();
    return true;
  }

  Result<std::size_t> compress_pieces(const void* src, std::size_t src_len, void* dst,
                                      std::size_t dst_cap, std::size_t piece) noexcept override {
    if (piece == 0 || piece >= src_len || src_len % piece != 0) {
      return compress(src, src_len, dst, dst_cap);
    }
    might_sleep();
    const std::size_t bound = ZSTD_compressBound(src_len) + (src_len / piece) * 8;
    return out_.compress(bound, dst, dst_cap, [&](void* to, std::size_t cap) {
      return compress_pieces_into(src, src_len, to, cap, piece);
    });
  }

  Result<std::size_t> decompress_prefix(const void* src, std::size_t src_len, void* dst,
                                        std::size_t dst_len, std::size_t need) noexcept override {
    might_sleep();
    prefix_ = {};
    const std::size_t r =
        ddict_ ? ZSTD_decompressBegin_usingDDict(dctx_, ddict_) : ZSTD_decompressBegin(dctx_);
    if (ZSTD_isError(r)) return Errc::codec_failed;
    prefix_ = {static_cast<const unsigned char*>(src), src_len, 0,
               static_cast<unsigned char*>(dst),       dst_len, 0};
    return decode_to(need);
  }

  std::size_t prefix_done() const noexcept override { return prefix_.src ? prefix_.out : 0; }

  Result<std::size_t> decompress_more(std::size_t need) noexcept override {
    if (!prefix_.src || prefix_.out == 0) return Errc::codec_failed;
    might_sleep();
    return decode_to(need);
  }

  Result<void> decompress(const void* src, std::size_t src_len, void* dst,
                          std::size_t dst_len) noexcept override {
    might_sleep();
    prefix_ = {};  // the context is reused: no prefix to continue
    const std::size_t n =
        ddict_ ? ZSTD_decompress_usingDDict(dctx_, dst, dst_len, src, src_len, ddict_)
               : ZSTD_decompressDCtx(dctx_, dst, dst_len, src, src_len);
    if (ZSTD_isError(n) || n != dst_len) return Errc::codec_failed;
    return {};
  }

 private:
  // A decompress_prefix() in progress: its input and output, and how far each has gone.
  struct Prefix {
    const unsigned char* src = nullptr;  // nullptr: none
    std::size_t src_len = 0, in = 0;
    unsigned char* dst = nullptr;
    std::size_t dst_len = 0, out = 0;
  };

  // Blocks until at least `need` bytes are out (and short of dst_len), or to the frame's
  // end (then exactly dst_len, and no input left). An error, or the end, leaves no prefix to
  // continue.
  Result<std::size_t> decode_to(std::size_t need) noexcept {
    Prefix& p = prefix_;
    bool ok = true;
    for (;;) {
      const std::size_t want = ZSTD_nextSrcSizeToDecompress(dctx_);
      if (want == 0) break;                           // the frame ended
      if (p.out >= need && p.out < p.dst_len) break;  // enough; more to come
      if (want > p.src_len - p.in) {                  // cut short
        ok = false;
        break;
      }
      const std::size_t n =
          ZSTD_decompressContinue(dctx_, p.dst + p.out, p.dst_len - p.out, p.src + p.in, want);
      if (ZSTD_isError(n)) {
        ok = false;
        break;
      }
      p.in += want;
      p.out += n;
    }
    const std::size_t out = p.out;
    const bool ended = ok && ZSTD_nextSrcSizeToDecompress(dctx_) == 0;
    if (!ok || (ended && (out != p.dst_len || p.in != p.src_len))) {
      prefix_ = {};
      return Errc::codec_failed;
    }
    if (ended) prefix_ = {};
    return out;
  }

  Result<std::size_t> compress_pieces_into(const void* src, std::size_t src_len, void* dst,
                                           std::size_t dst_cap, std::size_t piece) noexcept {
    ZSTD_CCtx_reset(cctx_, ZSTD_reset_session_and_parameters);
    const bool ok =
        !ZSTD_isError(cdict_ ? ZSTD_CCtx_refCDict(cctx_, cdict_)
                             : ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level_)) &&
        !ZSTD_isError(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_stableInBuffer, 1)) &&
        !ZSTD_isError(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_stableOutBuffer, 1)) &&
        !ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(cctx_, src_len));
    std::size_t left = 1;
    ZSTD_outBuffer out{dst, dst_cap, 0};
    ZSTD_inBuffer in{src, 0, 0};
    for (std::size_t end = piece; ok && end <= src_len; end += piece) {
      in.size = end;  // the same buffer, growing (ZSTD_c_stableInBuffer)
      left = ZSTD_compressStream2(cctx_, &out, &in, end == src_len ? ZSTD_e_end : ZSTD_e_flush);
      if (ZSTD_isError(left) || left != 0) break;
    }
    ZSTD_CCtx_reset(cctx_, ZSTD_reset_session_and_parameters);  // compress() as before
    if (!ok || ZSTD_isError(left) || left != 0 || in.pos != src_len) return Errc::codec_failed;
    return out.pos;
  }

  Result<std::size_t> compress_into(const void* src, std::size_t src_len, void* dst,
                                    std::size_t dst_cap) noexcept {
    const std::size_t n = cdict_
                              ? ZSTD_compress_usingCDict(cctx_, dst, dst_cap, src, src_len, cdict_)
                              : ZSTD_compressCCtx(cctx_, dst, dst_cap, src, src_len, level_);
    if (ZSTD_isError(n)) return Errc::codec_failed;
    return n;
  }

  const int level_;
  ZstdMemory mem_;                     // declared before the contexts it holds
  codec_internal::BoundedOutput out_;  // capacities below the library's bound
  ZSTD_CCtx* cctx_ = nullptr;
  ZSTD_DCtx* dctx_ = nullptr;
  ZSTD_CDict* cdict_ = nullptr;
  ZSTD_DDict* ddict_ = nullptr;
  Prefix prefix_;
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
