// store/codec_lzo_rle.cc - lzo-rle, the kernel's default zram algorithm: the LZO1X
// bitstream, version 1, which adds a zero-run instruction. Written from the published
// format description (the kernel's Documentation/staging/lzo.rst); the match finder is our
// own, so the output is a valid lzo-rle stream but not byte-identical to the kernel's.
//
// Stream layout (version 1): 17, 1, then LZO1X instructions, then the end marker 17 0 0.
// Instructions used by the compressor (S = number of literals, 0..3, that follow the
// instruction; longer literal runs get their own instruction):
//   first run    17 + t, then t literals (t <= 238; longer: as a long literal run)
//   literals     0000LLLL: t = L + 3 (4..18); L = 0: t = 18 + extended count
//   M2 match     LLLDDDSS HHHHHHHH: len 3..8, distance (H << 3) + D + 1 <= 2048
//   M3 match     001LLLLL [ext] DDDDDDSS DDDDDDDD: len L + 2 (L = 0: 33 + ext),
//                distance D + 1 <= 16384
//   zero run     00011LLL 111111SS 11111111 XXXXXXXX: ((X << 3) | L) + 4 zero bytes
//                (4..2051); version 1 only: it is an M4 match with distance 0xbfff
//   end          00010001 00000000 00000000 (an M4 match of distance 16384)
// An extended count is a run of zero bytes (255 each) ended by one non-zero byte.
// The decompressor also reads what the compressor never writes: M1 matches (0000DDSS
// after literals), M4 matches (distance 16385..49151), and version 0 streams.
#include <bit>
#include <cstdint>
#include <cstring>
#include <new>

#include "store/codec_internal.h"
#include "sync/lock_order.h"
#include "util/check.h"

namespace uzram::codec_internal {
namespace lzo_rle {
namespace {

using u8 = unsigned char;

constexpr std::size_t kMinZeroRun = 4;
constexpr std::size_t kMaxZeroRun = 2047 + kMinZeroRun;
constexpr std::size_t kM2MaxLen = 8;
constexpr std::size_t kM2MaxOffset = 0x0800;
constexpr std::size_t kM3MaxOffset = 0x4000;
constexpr std::size_t kM3MaxShortLen = 33;
constexpr unsigned kHashBits = 12;
static_assert((sizeof(std::uint32_t) << kHashBits) == kWorkBytes);

inline std::uint32_t load32(const u8* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline std::uint64_t load64(const u8* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline unsigned hash4(std::uint32_t v) noexcept { return (v * 0x9E3779B1u) >> (32 - kHashBits); }

// Index of the first differing byte in a non-zero XOR of two 8-byte loads.
inline std::size_t first_diff_byte(std::uint64_t x) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    return static_cast<std::size_t>(std::countr_zero(x)) >> 3;
  } else {
    return static_cast<std::size_t>(std::countl_zero(x)) >> 3;
  }
}

// Length of the common prefix of src[a..n) and src[b..), b < a.
std::size_t match_length(const u8* src, std::size_t a, std::size_t b, std::size_t n) noexcept {
  const std::size_t start = a;
  while (n - a >= 8) {
    const std::uint64_t x = load64(src + a) ^ load64(src + b);
    if (x != 0) return a - start + first_diff_byte(x);
    a += 8;
    b += 8;
  }
  while (a < n && src[a] == src[b]) {
    ++a;
    ++b;
  }
  return a - start;
}

// Number of zero bytes at src[a..n).
std::size_t zero_length(const u8* src, std::size_t a, std::size_t n) noexcept {
  const std::size_t start = a;
  while (n - a >= 8) {
    const std::uint64_t x = load64(src + a);
    if (x != 0) return a - start + first_diff_byte(x);
    a += 8;
  }
  while (a < n && src[a] == 0) ++a;
  return a - start;
}

// Writes instructions, bounds-checked: once out of room, everything is dropped and
// ok() turns false.
class Encoder {
 public:
  Encoder(u8* dst, std::size_t cap) noexcept : base_(dst), op_(dst), end_(dst + cap) {}

  bool ok() const noexcept { return ok_; }
  std::size_t size() const noexcept { return static_cast<std::size_t>(op_ - base_); }

  void version_header() noexcept {
    if (!room(2)) return;
    put(17);
    put(1);
  }

  void literals(const u8* p, std::size_t t) noexcept {
    if (t == 0) return;
    if (first_ && t <= 238) {
      if (!room(1 + t)) return;
      put(17 + t);  // the stream's first byte: t literals, state min(t, 4)
    } else if (!first_ && t <= 3) {
      if (!room(t)) return;
      ZS_DCHECK(state_byte_ != nullptr, "literals without a preceding instruction");
      *state_byte_ |= static_cast<u8>(t);  // carried in the S bits of the last instruction
    } else if (t <= 18) {
      if (!room(1 + t)) return;
      put(t - 3);
    } else {
      if (!room(2 + (t - 18) / 255 + t)) return;
      put(0);
      count(t - 18);
    }
    std::memcpy(op_, p, t);
    op_ += t;
    first_ = false;
  }

  // A back reference: 1 <= off <= kM3MaxOffset, len >= 3.
  void match(std::size_t off, std::size_t len) noexcept {
    const std::size_t d = off - 1;
    if (len <= kM2MaxLen && off <= kM2MaxOffset) {
      if (!room(2)) return;
      put(((len - 1) << 5) | ((d & 7) << 2));
      put(d >> 3);
    } else {
      if (len <= kM3MaxShortLen) {
        if (!room(3)) return;
        put(32 | (len - 2));
      } else {
        if (!room(4 + (len - kM3MaxShortLen) / 255)) return;
        put(32);
        count(len - kM3MaxShortLen);
      }
      put((d << 2) & 0xff);
      put(d >> 6);
    }
    state_byte_ = op_ - 2;
    first_ = false;
  }

  // kMinZeroRun <= run <= kMaxZeroRun zero bytes (version 1 only).
  void zero_run(std::size_t run) noexcept {
    if (!room(4)) return;
    const std::size_t r = run - kMinZeroRun;
    put(0x18 | (r & 7));
    put(0xfc);
    put(0xff);
    put(r >> 3);
    state_byte_ = op_ - 3;
    first_ = false;
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
  u8* state_byte_ = nullptr;  // holds the S bits of the last instruction
  bool first_ = true;         // nothing written after the header yet
  bool ok_ = true;
};

template <bool kRle>
std::size_t compress_impl(const u8* src, std::size_t n, u8* dst, std::size_t cap,
                          void* work) noexcept {
  Encoder enc(dst, cap);
  if (kRle) enc.version_header();
  std::size_t anchor = 0;  // first byte not yet emitted
  if (n > 4) {
    auto* table = static_cast<std::uint32_t*>(work);
    std::memset(table, 0, kWorkBytes);
    // Position 0 is always a literal: the stream's first instruction must be one.
    std::size_t ip = 1;
    const std::size_t limit = n - 4;  // last position with 4 readable bytes
    while (ip <= limit) {
      const std::uint32_t dv = load32(src + ip);
      // Leftmost position a match or run may start from: after the pending literals'
      // start, and never at 0.
      const std::size_t floor = anchor > 0 ? anchor : 1;
      if (kRle && dv == 0) {
        const std::size_t run_end = ip + 4 + zero_length(src, ip + 4, n);
        std::size_t run_start = ip;
        while (run_start > floor && src[run_start - 1] == 0) --run_start;
        enc.literals(src + anchor, run_start - anchor);
        std::size_t total = run_end - run_start;
        while (total > 0) {
          std::size_t chunk = total;
          if (chunk > kMaxZeroRun) {
            chunk = kMaxZeroRun;
            if (total - chunk < kMinZeroRun) chunk = total - kMinZeroRun;
          }
          enc.zero_run(chunk);
          total -= chunk;
        }
        ip = anchor = run_end;
        continue;
      }
      std::uint32_t& slot = table[hash4(dv)];
      std::size_t cand = slot;
      slot = static_cast<std::uint32_t>(ip);
      if (ip - cand <= kM3MaxOffset && load32(src + cand) == dv) {
        const std::size_t off = ip - cand;
        std::size_t len = 4 + match_length(src, ip + 4, cand + 4, n);
        while (ip > floor && cand > 0 && src[ip - 1] == src[cand - 1]) {
          --ip;
          --cand;
          ++len;
        }
        enc.literals(src + anchor, ip - anchor);
        enc.match(off, len);
        ip += len;
        anchor = ip;
        continue;
      }
      ip += 1 + ((ip - anchor) >> 5);  // skip faster through incompressible data
    }
  }
  enc.literals(src + anchor, n - anchor);
  enc.end_marker();
  return enc.ok() ? enc.size() : 0;
}

}  // namespace

std::size_t compress(const unsigned char* src, std::size_t n, unsigned char* dst,
                     std::size_t cap, void* work, bool rle) noexcept {
  if (n > UINT32_MAX) return 0;
  return rle ? compress_impl<true>(src, n, dst, cap, work)
             : compress_impl<false>(src, n, dst, cap, work);
}

bool decompress(const unsigned char* src, std::size_t n, unsigned char* dst,
                std::size_t dst_len) noexcept {
  const u8* ip = src;
  const u8* const ie = src + n;
  u8* op = dst;
  u8* const oe = dst + dst_len;
  bool v1 = false;
  // A version 0 stream of 5 or more bytes never starts with 17.
  if (n >= 5 && src[0] == 17) {
    if (src[1] != 1) return false;  // only version 1 exists
    v1 = true;
    ip += 2;
  }
  auto in_left = [&]() noexcept { return static_cast<std::size_t>(ie - ip); };
  auto out_left = [&]() noexcept { return static_cast<std::size_t>(oe - op); };
  auto copy_literals = [&](std::size_t t) noexcept {
    if (t + 8 <= in_left() && t + 8 <= out_left()) {
      // Room for whole 8-byte chunks on both sides: copy past t, within the buffers (the
      // extra output bytes are overwritten by what follows).
      for (std::size_t k = 0; k < t; k += 8) std::memcpy(op + k, ip + k, 8);
    } else {
      if (t > in_left() || t > out_left()) return false;
      std::memcpy(op, ip, t);
    }
    op += t;
    ip += t;
    return true;
  };
  // An extended count: zero bytes (255 each) ended by a non-zero byte, plus base.
  auto extended = [&](std::size_t base, std::size_t& out) noexcept {
    std::size_t zeros = 0;
    while (ip < ie && *ip == 0) {
      ++ip;
      if (++zeros > dst_len / 255 + 1) return false;  // longer than any valid output
    }
    if (ip == ie) return false;
    out = base + zeros * 255 + *ip++;
    return true;
  };

  if (ip == ie) return false;
  std::size_t state = 0;  // literals copied by the last instruction: 0, 1..3, or 4 (more)
  if (*ip > 17) {
    const std::size_t t = *ip++ - 17u;
    if (!copy_literals(t)) return false;
    state = t < 4 ? t : 4;
  }
  for (;;) {
    if (ip == ie) return false;
    const unsigned t = *ip++;
    std::size_t len;
    std::size_t dist;
    std::size_t s;
    if (t < 16) {
      if (state == 0) {  // long literal run
        if (t != 0) {
          len = t + 3;
        } else if (!extended(18, len)) {
          return false;
        }
        if (!copy_literals(len)) return false;
        state = 4;
        continue;
      }
      if (ip == ie) return false;
      const std::size_t h = *ip++;  // M1: 2 bytes <= 1 KiB back, or 3 bytes 2..3 KiB back
      dist = (h << 2) + ((t >> 2) & 3) + (state < 4 ? 1 : 2049);
      len = state < 4 ? 2 : 3;
      s = t & 3;
    } else if (t < 32) {
      if (v1 && (t & 8) != 0 && in_left() >= 2 && (ip[0] & 0xfc) == 0xfc && ip[1] == 0xff) {
        if (in_left() < 3) return false;  // zero run
        const std::size_t run = ((static_cast<std::size_t>(ip[2]) << 3) | (t & 7)) + kMinZeroRun;
        s = ip[0] & 3;
        ip += 3;
        if (run > out_left()) return false;
        std::memset(op, 0, run);
        op += run;
        if (!copy_literals(s)) return false;
        state = s;
        continue;
      }
      if ((t & 7) != 0) {  // M4: 16 KiB + (H << 14) + D back
        len = (t & 7) + 2;
      } else if (!extended(9, len)) {
        return false;
      }
      if (in_left() < 2) return false;
      const std::size_t v = ip[0] | (static_cast<std::size_t>(ip[1]) << 8);
      ip += 2;
      dist = 16384 + (static_cast<std::size_t>(t & 8) << 11) + (v >> 2);
      s = v & 3;
      if (dist == 16384) return len == 3 && s == 0 && ip == ie && op == oe;  // end marker
    } else if (t < 64) {
      if ((t & 31) != 0) {  // M3: up to 16 KiB back
        len = (t & 31) + 2;
      } else if (!extended(33, len)) {
        return false;
      }
      if (in_left() < 2) return false;
      const std::size_t v = ip[0] | (static_cast<std::size_t>(ip[1]) << 8);
      ip += 2;
      dist = (v >> 2) + 1;
      s = v & 3;
    } else {  // M2: 3..8 bytes up to 2 KiB back
      if (ip == ie) return false;
      const std::size_t h = *ip++;
      dist = (h << 3) + ((t >> 2) & 7) + 1;
      len = (t >> 5) + 1;
      s = t & 3;
    }
    if (dist > static_cast<std::size_t>(op - dst) || len > out_left()) return false;
    const u8* from = op - dist;
    if (dist >= 8 && len + 8 <= out_left()) {
      // 8-byte chunks, each read before it is written over: exact for any dist >= 8.
      for (std::size_t k = 0; k < len; k += 8) std::memcpy(op + k, from + k, 8);
    } else {
      for (std::size_t k = 0; k < len; ++k) op[k] = from[k];  // short distance: a repeat
    }
    op += len;
    if (!copy_literals(s)) return false;
    state = s;
  }
}

}  // namespace lzo_rle

namespace {

class LzoRleCodec final : public Codec {
 public:
  LzoRleCodec() noexcept = default;
  LzoRleCodec(const LzoRleCodec&) = delete;
  LzoRleCodec& operator=(const LzoRleCodec&) = delete;

  Result<void> init() noexcept {
    work_.reset(new (std::nothrow) std::uint32_t[lzo_rle::kWorkBytes / sizeof(std::uint32_t)]);
    if (!work_) return Errc::no_memory;
    return {};
  }

  std::string_view name() const noexcept override { return "lzo-rle"; }

  Result<std::size_t> compress(const void* src, std::size_t src_len, void* dst,
                               std::size_t dst_cap) noexcept override {
    might_sleep();
    const std::size_t n =
        lzo_rle::compress(static_cast<const unsigned char*>(src), src_len,
                          static_cast<unsigned char*>(dst), dst_cap, work_.get(), /*rle=*/true);
    if (n == 0) return Errc::codec_failed;
    return n;
  }

  Result<void> decompress(const void* src, std::size_t src_len, void* dst,
                          std::size_t dst_len) noexcept override {
    might_sleep();
    if (!lzo_rle::decompress(static_cast<const unsigned char*>(src), src_len,
                             static_cast<unsigned char*>(dst), dst_len)) {
      return Errc::codec_failed;
    }
    return {};
  }

 private:
  std::unique_ptr<std::uint32_t[]> work_;
};

}  // namespace

Result<std::unique_ptr<Codec>> make_lzo_rle() noexcept {
  auto* codec = new (std::nothrow) LzoRleCodec();
  if (codec == nullptr) return Errc::no_memory;
  std::unique_ptr<Codec> owner(codec);
  if (auto r = codec->init(); !r) return r.error();
  return owner;
}

}  // namespace uzram::codec_internal
