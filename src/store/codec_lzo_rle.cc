// store/codec_lzo_rle.cc - lzo-rle, the kernel's default zram algorithm: the LZO1X
// bitstream, version 1, which adds a zero-run instruction; and the safe decompressor of
// both versions. Written from the published format description (the kernel's
// Documentation/staging/lzo.rst). The compressor, shared with lzo, is lzo1x_compress.cc.
//
// Stream layout (version 1): 17, 1, then LZO1X instructions, then the end marker 17 0 0.
// Instructions (S = number of literals, 0..3, that follow the instruction; longer literal
// runs get their own instruction):
//   first run    17 + t, then t literals (t <= 238)
//   literals     0000LLLL: t = L + 3 (4..18); L = 0: t = 18 + extended count
//   M1 match     0000DDSS HHHHHHHH, right after literals (the compressor never writes it)
//   M2 match     LLLDDDSS HHHHHHHH: len 3..8, distance (H << 3) + D + 1 <= 2048
//   M3 match     001LLLLL [ext] DDDDDDSS DDDDDDDD: len L + 2 (L = 0: 33 + ext),
//                distance D + 1 <= 16384
//   M4 match     0001HLLL [ext] DDDDDDSS DDDDDDDD: distance 16384 + (H << 14) + D
//   zero run     00011LLL 111111SS 11111111 XXXXXXXX: ((X << 3) | L) + 4 zero bytes
//                (4..2051); version 1 only: it is an M4 match with distance 0xbfff
//   end          00010001 00000000 00000000 (an M4 match of distance 16384)
// An extended count is a run of zero bytes (255 each) ended by one non-zero byte.
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

}  // namespace

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

class LzoRleCodec final : public Lzo1xCodec {
 public:
  LzoRleCodec() noexcept : Lzo1xCodec(/*rle=*/true) {}

  std::string_view name() const noexcept override { return "lzo-rle"; }

  Result<void> decompress(const void* src, std::size_t src_len, void* dst,
                          std::size_t dst_len) noexcept override {
    might_sleep();
    if (!lzo_rle::decompress(static_cast<const unsigned char*>(src), src_len,
                             static_cast<unsigned char*>(dst), dst_len)) {
      return Errc::codec_failed;
    }
    return {};
  }
};

}  // namespace

Result<std::unique_ptr<Codec>> make_lzo_rle() noexcept {
  std::unique_ptr<Codec> codec(new (std::nothrow) LzoRleCodec());
  if (!codec) return Errc::no_memory;
  return codec;
}

}  // namespace uzram::codec_internal
