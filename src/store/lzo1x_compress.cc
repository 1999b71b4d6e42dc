// store/lzo1x_compress.cc - the LZO1X-1 compressor of the lzo and lzo-rle codecs, with the
// Linux kernel's match-finding heuristics so that zram page sizes come out the same as
// the kernel's (docs/codecs.md#lzo-and-lzo-rle, checked by scripts/fidelity.sh). Written
// from the published format (the kernel's Documentation/staging/lzo.rst) and a prose
// description of the kernel's parse; no code taken from the kernel or liblzo2.
//
// The parse, per chunk of at most 48 KiB (a fresh dictionary each; literals carry over):
//   - a dictionary of 8192 16-bit chunk offsets, all 0 at the start (so every slot first
//     "points" at the chunk start), indexed by (le32(p) * 0x1824429d) >> 19;
//   - positions are tried from chunk start + 1 + max(0, 4 - carried literals), and after each
//     miss the step grows by one every 32 pending literals (1 + pending / 32);
//   - a try: 4 zero bytes (lzo-rle only) start a zero run, counted up to 2051 bytes and
//     never past the chunk end - 20, without touching the dictionary; otherwise the
//     dictionary slot is read and replaced by this position, and the 4 bytes must match;
//   - a match is extended 8 bytes at a time (first differing byte by XOR), and stops at
//     the first 8-byte step that reaches chunk end - 20; no backward extension;
//   - after a match or run the next try is at its end, with no step;
//   - the last 20 bytes of a chunk and of the input are literals.
// Instruction encoding (shortest form) is in the Encoder below.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>

#include "store/codec_internal.h"
#include "sync/lock_order.h"
#include "util/check.h"

namespace uzram::codec_internal::lzo_rle {
namespace {

using u8 = unsigned char;

constexpr std::size_t kMinZeroRun = 4;
constexpr std::size_t kMaxZeroRun = 2047 + kMinZeroRun;
constexpr std::size_t kM2MaxLen = 8;
constexpr std::size_t kM2MaxOffset = 0x0800;
constexpr std::size_t kM3MaxLen = 33;
constexpr std::size_t kM3MaxOffset = 0x4000;
constexpr std::size_t kM4MaxLen = 9;
// Chunk size = the largest M4 distance + 1: 0xbfff in version 0; in version 1 one less,
// because an M4 of distance 0xbfff means a zero run there.
constexpr std::size_t kChunkV0 = 0xbfff + 1;
constexpr std::size_t kChunkV1 = 0xbffe + 1;
constexpr std::size_t kTail = 20;  // bytes at the end of a chunk never searched
constexpr unsigned kDictBits = 13;
static_assert((sizeof(std::uint16_t) << kDictBits) <= kWorkBytes);

inline std::uint32_t le32(const u8* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
  return v;
}

inline std::uint64_t load64(const u8* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Index of the first differing byte in a non-zero XOR of two 8-byte loads.
inline std::size_t first_diff_byte(std::uint64_t x) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    return static_cast<std::size_t>(std::countr_zero(x)) >> 3;
  } else {
    return static_cast<std::size_t>(std::countl_zero(x)) >> 3;
  }
}

// Writes instructions, bounds-checked: once out of room, everything is dropped and ok()
// turns false.
class Encoder {
 public:
  Encoder(u8* dst, std::size_t cap) noexcept : base_(dst), op_(dst), end_(dst + cap) {}

  bool ok() const noexcept { return ok_; }
  std::size_t size() const noexcept { return static_cast<std::size_t>(op_ - base_); }

  void version_header() noexcept {
    if (!room(2)) return;
    put(17);
    put(1);
    data_start_ = op_;
  }

  // A literal run t >= 1 before a match or run (mid-stream form).
  void literals(const u8* p, std::size_t t) noexcept {
    ZS_DCHECK(t >= 4 || state_byte_ != nullptr, "a short literal run needs a previous instruction");
    if (t <= 3) {
      if (!room(t)) return;
      *state_byte_ |= static_cast<u8>(t);  // carried in the S bits of the last instruction
    } else if (t <= 18) {
      if (!room(1 + t)) return;
      put(t - 3);
    } else {
      if (!room(2 + (t - 18) / 255 + t)) return;
      put(0);
      count(t - 18);
    }
    copy(p, t);
  }

  // The final literals: the short first-run form when nothing else was written.
  void last_literals(const u8* p, std::size_t t) noexcept {
    if (t == 0) return;
    if (op_ == data_start_ && t <= 238) {
      if (!room(1 + t)) return;
      put(17 + t);
      copy(p, t);
      return;
    }
    literals(p, t);
  }

  // A back reference: 1 <= off <= 49151, len >= 3 (len >= 4 beyond kM2MaxOffset).
  void match(std::size_t off, std::size_t len) noexcept {
    if (len <= kM2MaxLen && off <= kM2MaxOffset) {
      if (!room(2)) return;
      const std::size_t d = off - 1;
      put(((len - 1) << 5) | ((d & 7) << 2));
      put(d >> 3);
    } else if (off <= kM3MaxOffset) {
      const std::size_t d = off - 1;
      if (!room(4 + len / 255)) return;
      if (len <= kM3MaxLen) {
        put(32 | (len - 2));
      } else {
        put(32);
        count(len - kM3MaxLen);
      }
      put((d << 2) & 0xff);
      put(d >> 6);
    } else {
      const std::size_t d = off - 0x4000;
      if (!room(4 + len / 255)) return;
      if (len <= kM4MaxLen) {
        put(16 | ((d >> 11) & 8) | (len - 2));
      } else {
        put(16 | ((d >> 11) & 8));
        count(len - kM4MaxLen);
      }
      put((d << 2) & 0xff);
      put((d >> 6) & 0xff);
    }
    state_byte_ = op_ - 2;
  }

  // kMinZeroRun <= run <= kMaxZeroRun zero bytes (version 1 only): an M4 instruction of
  // distance 0xbfff, which version 1 reads as a run.
  void zero_run(std::size_t run) noexcept {
    if (!room(4)) return;
    const std::size_t r = run - kMinZeroRun;
    put(0x18 | (r & 7));
    put(0xfc);
    put(0xff);
    put(r >> 3);
    state_byte_ = op_ - 3;
  }

  void end_marker() noexcept {
    if (!room(3)) return;
    put(17);
    put(0);
    put(0);
  }

 private:
  bool room(std::size_t n) noexcept {
    if (ok_ && static_cast<std::size_t>(end_ - op_) < n) ok_ = false;
    return ok_;
  }
  void put(std::size_t v) noexcept { *op_++ = static_cast<u8>(v); }
  void copy(const u8* p, std::size_t t) noexcept {
    std::memcpy(op_, p, t);
    op_ += t;
  }
  // An extended count v >= 1: (v - 1) / 255 zero bytes, then the remainder (1..255).
  void count(std::size_t v) noexcept {
    while (v > 255) {
      put(0);
      v -= 255;
    }
    put(v);
  }

  u8* const base_;
  u8* op_;
  u8* const end_;
  u8* data_start_ = base_;    // where instructions start (after a version header)
  u8* state_byte_ = nullptr;  // holds the S bits of the last instruction
  bool ok_ = true;
};

// Number of zero bytes at [p, limit) (p < limit).
std::size_t zero_length(const u8* p, const u8* limit) noexcept {
  const u8* q = p;
  while (limit - q >= 8) {
    const std::uint64_t x = load64(q);
    if (x != 0) return static_cast<std::size_t>(q - p) + first_diff_byte(x);
    q += 8;
  }
  while (q < limit && *q == 0) ++q;
  return static_cast<std::size_t>(q - p);
}

// One chunk in[0..len), len > kTail. `carried` literals before `in` are still pending.
// Returns the literals pending at the chunk's end (counted from their first byte).
template <bool kRle>
std::size_t parse_chunk(const u8* in, std::size_t len, std::size_t carried, Encoder& enc,
                        std::uint16_t* dict) noexcept {
  const u8* const ip_end = in + len - kTail;
  const u8* lit = in - carried;  // first pending literal
  const u8* ip = in + (carried < 4 ? 4 - carried : 0);
  bool step = true;  // false right after a match or run
  for (;;) {
    if (step) ip += 1 + (static_cast<std::size_t>(ip - std::max(lit, in)) >> 5);
    step = true;
    if (ip >= ip_end) break;
    const std::uint32_t dv = le32(ip);
    std::size_t run = 0;
    const u8* ref = nullptr;
    if (kRle && dv == 0) {
      const u8* limit = std::min(ip_end, ip + kMaxZeroRun + 1);
      run = std::min(kMaxZeroRun, 4 + zero_length(ip + 4, std::max(limit, ip + 4)));
    } else {
      const std::uint32_t h = (dv * 0x1824429du) >> (32 - kDictBits);
      ref = in + dict[h];
      dict[h] = static_cast<std::uint16_t>(ip - in);
      if (dv != le32(ref)) continue;
    }
    if (ip > lit) enc.literals(lit, static_cast<std::size_t>(ip - lit));
    if (run) {
      enc.zero_run(run);
      ip += run;
    } else {
      std::size_t m_len = 4;
      std::uint64_t x = load64(ip + m_len) ^ load64(ref + m_len);
      bool capped = false;
      while (x == 0) {
        m_len += 8;
        x = load64(ip + m_len) ^ load64(ref + m_len);
        if (ip + m_len >= ip_end) {
          capped = true;
          break;
        }
      }
      if (!capped) m_len += first_diff_byte(x);
      const std::size_t off = static_cast<std::size_t>(ip - ref);
      // Version 1 reads an M4 of these lengths and distances ambiguously: shorten it.
      if (kRle && off > kM3MaxOffset && ((off - 0x4000) & 0x403f) == 0x403f && m_len >= 261 &&
          m_len <= 264) {
        m_len = 260;
      }
      enc.match(off, m_len);
      ip += m_len;
    }
    lit = ip;
    step = false;
  }
  return static_cast<std::size_t>(in + len - lit);
}

template <bool kRle>
std::size_t compress_impl(const u8* src, std::size_t n, u8* dst, std::size_t cap,
                          void* work) noexcept {
  Encoder enc(dst, cap);
  if (kRle) enc.version_header();
  auto* dict = static_cast<std::uint16_t*>(work);
  const u8* ip = src;
  std::size_t left = n;
  std::size_t pending = 0;  // literals before ip not yet written
  while (left > kTail) {
    const std::size_t len = std::min(left, kRle ? kChunkV1 : kChunkV0);
    std::memset(dict, 0, sizeof(std::uint16_t) << kDictBits);
    pending = parse_chunk<kRle>(ip, len, pending, enc, dict);
    ip += len;
    left -= len;
  }
  pending += left;
  enc.last_literals(src + n - pending, pending);
  enc.end_marker();
  return enc.ok() ? enc.size() : 0;
}

}  // namespace

std::size_t compress(const unsigned char* src, std::size_t n, unsigned char* dst, std::size_t cap,
                     void* work, bool rle) noexcept {
  if (n > UINT32_MAX) return 0;
  return rle ? compress_impl<true>(src, n, dst, cap, work)
             : compress_impl<false>(src, n, dst, cap, work);
}

}  // namespace uzram::codec_internal::lzo_rle

namespace uzram::codec_internal {

Result<std::size_t> Lzo1xCodec::compress(const void* src, std::size_t src_len, void* dst,
                                         std::size_t dst_cap) noexcept {
  might_sleep();
  const std::size_t n = lzo_rle::compress(static_cast<const unsigned char*>(src), src_len,
                                          static_cast<unsigned char*>(dst), dst_cap, work_, rle_);
  if (n == 0) return Errc::codec_failed;
  return n;
}

}  // namespace uzram::codec_internal
