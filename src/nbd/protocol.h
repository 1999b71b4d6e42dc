// nbd/protocol.h - the NBD wire format (layer 4, nbd): constants, header layouts,
// big-endian (de)coding, request validation, option parsing and reply encoding, written
// from the protocol specification (proto.md). Pure functions: no I/O.
#ifndef UZRAM_NBD_PROTOCOL_H_
#define UZRAM_NBD_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <span>

namespace uzram::nbd {

// ---- Handshake -----------------------------------------------------------------------
inline constexpr std::uint64_t kNbdMagic = 0x4e42444d41474943ULL;  // "NBDMAGIC"
inline constexpr std::uint64_t kIHaveOpt = 0x49484156454F5054ULL;  // "IHAVEOPT"
inline constexpr std::uint64_t kOptReplyMagic = 0x3e889045565a9ULL;
inline constexpr std::uint16_t kFlagFixedNewstyle = 1 << 0;  // server handshake flags
inline constexpr std::uint16_t kFlagNoZeroes = 1 << 1;
inline constexpr std::uint32_t kClientFixedNewstyle = 1 << 0;  // client flags
inline constexpr std::uint32_t kClientNoZeroes = 1 << 1;

enum Opt : std::uint32_t {
  kOptExportName = 1,
  kOptAbort = 2,
  kOptList = 3,
  kOptPeekExport = 4,
  kOptStartTls = 5,
  kOptInfo = 6,
  kOptGo = 7,
  kOptStructuredReply = 8,
  kOptListMetaContext = 9,
  kOptSetMetaContext = 10,
  kOptExtendedHeaders = 11,
};
inline constexpr std::uint32_t kRepErrBit = 1U << 31;
enum Rep : std::uint32_t {
  kRepAck = 1,
  kRepServer = 2,
  kRepInfo = 3,
  kRepMetaContext = 4,
  kRepErrUnsup = kRepErrBit | 1,
  kRepErrPolicy = kRepErrBit | 2,
  kRepErrInvalid = kRepErrBit | 3,
  kRepErrPlatform = kRepErrBit | 4,
  kRepErrTlsReqd = kRepErrBit | 5,
  kRepErrUnknown = kRepErrBit | 6,
  kRepErrShutdown = kRepErrBit | 7,
  kRepErrBlockSizeReqd = kRepErrBit | 8,
  kRepErrTooBig = kRepErrBit | 9,
};
enum Info : std::uint16_t {
  kInfoExport = 0,
  kInfoName = 1,
  kInfoDescription = 2,
  kInfoBlockSize = 3
};

// Transmission flags (NBD_INFO_EXPORT / NBD_OPT_EXPORT_NAME).
inline constexpr std::uint16_t kTxHasFlags = 1 << 0, kTxReadOnly = 1 << 1, kTxSendFlush = 1 << 2,
                               kTxSendFua = 1 << 3, kTxRotational = 1 << 4, kTxSendTrim = 1 << 5,
                               kTxSendWriteZeroes = 1 << 6, kTxSendDf = 1 << 7,
                               kTxCanMultiConn = 1 << 8, kTxSendResize = 1 << 9,
                               kTxSendCache = 1 << 10, kTxSendFastZero = 1 << 11;

// ---- Transmission --------------------------------------------------------------------
inline constexpr std::uint32_t kRequestMagic = 0x25609513;
inline constexpr std::uint32_t kSimpleReplyMagic = 0x67446698;
inline constexpr std::uint32_t kStructuredReplyMagic = 0x668e33ef;
inline constexpr std::size_t kRequestSize = 28;
inline constexpr std::size_t kSimpleReplySize = 16;
inline constexpr std::size_t kChunkHeaderSize = 20;

enum Cmd : std::uint16_t {
  kCmdRead = 0,
  kCmdWrite = 1,
  kCmdDisc = 2,
  kCmdFlush = 3,
  kCmdTrim = 4,
  kCmdCache = 5,
  kCmdWriteZeroes = 6,
  kCmdBlockStatus = 7,
};
inline constexpr std::uint16_t kCmdFlagFua = 1 << 0, kCmdFlagNoHole = 1 << 1, kCmdFlagDf = 1 << 2,
                               kCmdFlagReqOne = 1 << 3, kCmdFlagFastZero = 1 << 4;

inline constexpr std::uint16_t kChunkFlagDone = 1;
enum Chunk : std::uint16_t {
  kChunkNone = 0,
  kChunkOffsetData = 1,
  kChunkOffsetHole = 2,
  kChunkBlockStatus = 5,
  kChunkError = (1 << 15) | 1,
  kChunkErrorOffset = (1 << 15) | 2,
};

// Error values on the wire (not the host's errno numbers, although they coincide on Linux).
enum Err : std::uint32_t {
  kEperm = 1,
  kEio = 5,
  kEnomem = 12,
  kEinval = 22,
  kEnospc = 28,
  kEoverflow = 75,
  kEnotsup = 95,
  kEshutdown = 108,
};

// base:allocation
inline constexpr const char* kBaseAllocation = "base:allocation";
inline constexpr std::uint32_t kStateHole = 1, kStateZero = 2;
inline constexpr std::uint32_t kBaseAllocationId = 1;  // the context id we assign

// ---- Limits --------------------------------------------------------------------------
inline constexpr std::uint32_t kMaxPayload = 32U << 20;       // READ/WRITE bytes per request
inline constexpr std::uint32_t kMaxOptionLength = 64U << 10;  // option data we parse
inline constexpr std::uint32_t kMaxOptionSkip = 16U << 20;    // longer unknown data: close
inline constexpr std::uint32_t kMaxString = 4096;             // export / context names

// ---- Big-endian coding ---------------------------------------------------------------
inline void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}
inline void put32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}
inline void put64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = static_cast<std::uint8_t>(v >> (56 - 8 * i));
}
inline std::uint16_t get16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
inline std::uint32_t get32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
inline std::uint64_t get64(const std::uint8_t* p) {
  return std::uint64_t{get32(p)} << 32 | get32(p + 4);
}

struct Request {
  std::uint32_t magic = 0;
  std::uint16_t flags = 0;
  std::uint16_t type = 0;
  std::uint64_t cookie = 0;
  std::uint64_t offset = 0;
  std::uint32_t length = 0;
};
inline Request decode_request(const std::uint8_t (&b)[kRequestSize]) {
  return {get32(b), get16(b + 4), get16(b + 6), get64(b + 8), get64(b + 16), get32(b + 24)};
}

// ---- Replies: encoders into the caller's buffers (big-endian; no I/O) -----------------
// Sizes: a simple reply; a structured chunk header; the error chunk (header, u32 error,
// u16 message length 0); an OFFSET_DATA header (header, u64 offset: the data follows); an
// OFFSET_HOLE chunk (header, u64 offset, u32 length); a BLOCK_STATUS header (header, u32
// context id: the extents follow, 8 bytes each).
inline constexpr std::size_t kErrorChunkSize = kChunkHeaderSize + 6;
inline constexpr std::size_t kDataChunkHeaderSize = kChunkHeaderSize + 8;
inline constexpr std::size_t kHoleChunkSize = kChunkHeaderSize + 12;
inline constexpr std::size_t kBlockStatusHeaderSize = kChunkHeaderSize + 4;
inline constexpr std::size_t kExtentSize = 8;

// A simple reply (kSimpleReplySize bytes); the data of a successful READ follows it.
void encode_simple_reply(std::uint8_t* out, std::uint64_t cookie, std::uint32_t error) noexcept;
// A structured reply chunk's header (kChunkHeaderSize bytes) for `length` payload bytes.
void encode_chunk_header(std::uint8_t* out, std::uint64_t cookie, std::uint16_t type,
                         std::uint32_t length, std::uint16_t flags = kChunkFlagDone) noexcept;
// NBD_REPLY_TYPE_ERROR with no message, DONE (kErrorChunkSize bytes).
void encode_error_chunk(std::uint8_t* out, std::uint64_t cookie, std::uint32_t error) noexcept;
// NBD_REPLY_TYPE_OFFSET_DATA's header for `length` data bytes at `offset`
// (kDataChunkHeaderSize bytes); the data follows.
void encode_data_chunk_header(std::uint8_t* out, std::uint64_t cookie, std::uint64_t offset,
                              std::uint32_t length, std::uint16_t flags) noexcept;
// NBD_REPLY_TYPE_OFFSET_HOLE: `length` zero bytes at `offset` (kHoleChunkSize bytes).
void encode_hole_chunk(std::uint8_t* out, std::uint64_t cookie, std::uint64_t offset,
                       std::uint32_t length, std::uint16_t flags) noexcept;
// NBD_REPLY_TYPE_BLOCK_STATUS's header for `count` extents of base:allocation, DONE
// (kBlockStatusHeaderSize bytes); the extents follow, each encode_extent().
void encode_block_status_header(std::uint8_t* out, std::uint64_t cookie,
                                std::size_t count) noexcept;
// One block status descriptor (kExtentSize bytes): u32 length, u32 flags (kState*).
inline void encode_extent(std::uint8_t* out, std::uint32_t length, std::uint32_t flags) noexcept {
  put32(out, length);
  put32(out + 4, flags);
}

// A structured READ reply in chunks: runs of whole zero 4 KiB blocks (aligned to the disk,
// not to the request) at least kMinHole bytes long together go as OFFSET_HOLE chunks, the
// rest as OFFSET_DATA chunks; the last chunk carries DONE.
struct ReadChunk {
  std::uint32_t offset;  // within the request's data
  std::uint32_t length;
  bool hole;
};
inline constexpr std::uint32_t kMinHole = 64 << 10;
// At most this many chunks for `length` bytes (each hole is at least kMinHole long and has
// at most one data chunk before it, plus the data after the last).
constexpr std::size_t max_read_chunks(std::uint32_t length) noexcept {
  return 2 * (length / kMinHole) + 2;
}
// Splits the `length` bytes of `data`, read at disk `offset`, into out[0..n) and returns n
// (at most max_read_chunks(length)); 0 when there is no hole: the reply is then one
// OFFSET_DATA chunk.
std::size_t split_read(std::uint64_t offset, const std::uint8_t* data, std::uint32_t length,
                       ReadChunk* out) noexcept;

// What a request is allowed to do, given what was negotiated. validate() returns 0 when the
// request may go to the backend, else the NBD error to reply with. `payload_follows` says
// whether `length` bytes of data follow the header on the wire (WRITE), whatever the verdict.
struct Negotiated {
  std::uint64_t size = 0;
  bool structured = false;
  bool meta_base_allocation = false;
};
struct Verdict {
  std::uint32_t error = 0;
  bool payload_follows = false;
  bool disconnect = false;  // NBD_CMD_DISC
};
Verdict validate(const Request& r, const Negotiated& n) noexcept;

// The per-option parsers of the handshake (pure functions over the option data).
// NBD_OPT_INFO / NBD_OPT_GO data: u32 name length, name, u16 n, n x u16 info types.
struct InfoRequest {
  std::span<const std::uint8_t> name;
  std::uint16_t count = 0;
  std::span<const std::uint8_t> types;  // 2 * count bytes
};
bool parse_info_request(std::span<const std::uint8_t> data, InfoRequest* out) noexcept;
// NBD_OPT_{LIST,SET}_META_CONTEXT data: u32 name length, name, u32 n, n x (u32 len, query).
// Calls visit(query) for each query; false on malformed data.
template <typename F>
bool parse_meta_request(std::span<const std::uint8_t> d, F&& visit) {
  if (d.size() < 4) return false;
  const std::uint32_t nl = get32(d.data());
  if (nl > kMaxString || d.size() < 8 + std::size_t{nl}) return false;
  std::size_t at = 4 + nl;
  const std::uint32_t n = get32(d.data() + at);
  at += 4;
  for (std::uint32_t i = 0; i < n; i++) {
    if (d.size() - at < 4) return false;
    const std::uint32_t ql = get32(d.data() + at);
    at += 4;
    if (ql > kMaxString || d.size() - at < ql) return false;
    visit(d.subspan(at, ql));
    at += ql;
  }
  return at == d.size();
}

}  // namespace uzram::nbd

#endif  // UZRAM_NBD_PROTOCOL_H_
