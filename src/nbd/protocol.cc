// nbd/protocol.cc - request validation, option parsing and reply encoding (no I/O).
#include "nbd/protocol.h"

#include <cstring>

namespace uzram::nbd {

Verdict validate(const Request& r, const Negotiated& n) noexcept {
  Verdict v;
  v.payload_follows = r.type == kCmdWrite;
  std::uint16_t allowed = 0;
  bool ranged = true;
  switch (r.type) {
    case kCmdRead: allowed = n.structured ? kCmdFlagDf : 0; break;
    case kCmdWrite: allowed = kCmdFlagFua; break;
    case kCmdTrim: allowed = kCmdFlagFua; break;
    case kCmdWriteZeroes: allowed = kCmdFlagFua | kCmdFlagNoHole | kCmdFlagFastZero; break;
    case kCmdBlockStatus: allowed = kCmdFlagReqOne; break;
    case kCmdCache: break;
    case kCmdFlush: ranged = false; break;
    case kCmdDisc: v.disconnect = true; return v;
    default: v.error = kEinval; return v;
  }
  if ((r.flags & ~allowed) != 0) {
    v.error = kEinval;
    return v;
  }
  if (!ranged) return v;
  if (r.length == 0) {
    v.error = kEinval;
    return v;
  }
  if ((r.type == kCmdRead || r.type == kCmdWrite) && r.length > kMaxPayload) {
    v.error = kEinval;
    return v;
  }
  if (r.offset > n.size || r.length > n.size - r.offset) {
    v.error = (r.type == kCmdWrite || r.type == kCmdWriteZeroes) ? kEnospc : kEinval;
    return v;
  }
  if (r.type == kCmdBlockStatus && !(n.structured && n.meta_base_allocation)) v.error = kEinval;
  return v;
}

bool parse_info_request(std::span<const std::uint8_t> d, InfoRequest* out) noexcept {
  if (d.size() < 6) return false;
  const std::uint32_t nl = get32(d.data());
  if (nl > kMaxString || d.size() < 6 + std::size_t{nl}) return false;
  out->name = d.subspan(4, nl);
  out->count = get16(d.data() + 4 + nl);
  if (d.size() != 6 + std::size_t{nl} + 2 * std::size_t{out->count}) return false;
  out->types = d.subspan(6 + nl);
  return true;
}

// ---- Replies --------------------------------------------------------------------------

void encode_simple_reply(std::uint8_t* out, std::uint64_t cookie, std::uint32_t error) noexcept {
  put32(out, kSimpleReplyMagic);
  put32(out + 4, error);
  put64(out + 8, cookie);
}

void encode_chunk_header(std::uint8_t* out, std::uint64_t cookie, std::uint16_t type,
                         std::uint32_t length, std::uint16_t flags) noexcept {
  put32(out, kStructuredReplyMagic);
  put16(out + 4, flags);
  put16(out + 6, type);
  put64(out + 8, cookie);
  put32(out + 16, length);
}

void encode_error_chunk(std::uint8_t* out, std::uint64_t cookie, std::uint32_t error) noexcept {
  encode_chunk_header(out, cookie, kChunkError, 6);
  put32(out + kChunkHeaderSize, error);
  put16(out + kChunkHeaderSize + 4, 0);  // no message
}

void encode_data_chunk_header(std::uint8_t* out, std::uint64_t cookie, std::uint64_t offset,
                              std::uint32_t length, std::uint16_t flags) noexcept {
  encode_chunk_header(out, cookie, kChunkOffsetData, 8 + length, flags);
  put64(out + kChunkHeaderSize, offset);
}

void encode_hole_chunk(std::uint8_t* out, std::uint64_t cookie, std::uint64_t offset,
                       std::uint32_t length, std::uint16_t flags) noexcept {
  encode_chunk_header(out, cookie, kChunkOffsetHole, 12, flags);
  put64(out + kChunkHeaderSize, offset);
  put32(out + kChunkHeaderSize + 8, length);
}

void encode_block_status_header(std::uint8_t* out, std::uint64_t cookie,
                                std::size_t count) noexcept {
  encode_chunk_header(out, cookie, kChunkBlockStatus,
                      static_cast<std::uint32_t>(4 + kExtentSize * count));
  put32(out + kChunkHeaderSize, kBaseAllocationId);
}

namespace {

// n is a multiple of 64. Data blocks usually differ from zero in their first line, so the
// check stops at the first non-zero 64 bytes.
bool all_zero(const std::uint8_t* p, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; i += 64) {
    std::uint64_t w[8];
    std::memcpy(w, p + i, sizeof w);
    if ((w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0) return false;
  }
  return true;
}

}  // namespace

std::size_t split_read(std::uint64_t offset, const std::uint8_t* data, std::uint32_t length,
                       ReadChunk* out) noexcept {
  constexpr std::uint32_t kBlock = 4096;
  std::size_t n = 0;
  std::uint32_t data_from = 0;  // start of the pending data chunk
  const auto first = static_cast<std::uint32_t>(-offset & (kBlock - 1));
  for (std::uint32_t b = first; b + kBlock <= length;) {
    std::uint32_t e = b;
    while (e + kBlock <= length && all_zero(data + e, kBlock)) e += kBlock;
    if (e - b >= kMinHole) {
      if (b > data_from) out[n++] = {data_from, b - data_from, false};
      out[n++] = {b, e - b, true};
      data_from = e;
    }
    b = e == b ? b + kBlock : e;
  }
  if (n == 0) return 0;
  if (data_from < length) out[n++] = {data_from, length - data_from, false};
  return n;
}

}  // namespace uzram::nbd
