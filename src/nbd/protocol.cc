// nbd/protocol.cc - request validation and option parsing (no I/O).
#include "nbd/protocol.h"

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

}  // namespace uzram::nbd
