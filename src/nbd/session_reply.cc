// nbd/session_reply.cc - a session's replies: encoded by protocol.h, each sent whole under
// the send mutex (so replies never interleave), and the READ replies of a preallocated
// session, which go out piece by piece when longer than a piece.
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <memory>
#include <new>

#include "nbd/session_impl.h"
#include "nbd/transport.h"

namespace uzram::nbd {
namespace {

constexpr std::size_t kMaxIov = 512;  // per writev, below IOV_MAX
constexpr std::size_t kHeaderMax = std::max(kHoleChunkSize, kDataChunkHeaderSize);
using ChunkHeader = std::array<std::uint8_t, kHeaderMax>;
// Reads up to kMaxPiece long are chunked with arrays on the stack (no allocation).
constexpr std::size_t kStackChunks = max_read_chunks(static_cast<std::uint32_t>(kMaxPiece));

// The chunks of `n` bytes of `buf`, read at disk offset `at`, into v (2 per chunk) with
// their headers in hdrs; 0 when the data has no hole. DONE only on the last chunk, and
// only when `last`.
std::size_t read_chunks(const Request& r, std::uint64_t at, const std::uint8_t* buf,
                        std::uint32_t n, bool last, ReadChunk* chunks, ChunkHeader* hdrs,
                        iovec* v) noexcept {
  const std::size_t count = split_read(at, buf, n, chunks);
  std::size_t nv = 0;
  for (std::size_t i = 0; i < count; i++) {
    const ReadChunk& c = chunks[i];
    const std::uint16_t flags = last && i + 1 == count ? kChunkFlagDone : 0;
    std::uint8_t* h = hdrs[i].data();
    if (c.hole) {
      encode_hole_chunk(h, r.cookie, at + c.offset, c.length, flags);
      v[nv++] = {h, kHoleChunkSize};
    } else {
      encode_data_chunk_header(h, r.cookie, at + c.offset, c.length, flags);
      v[nv++] = {h, kDataChunkHeaderSize};
      v[nv++] = {const_cast<std::uint8_t*>(buf) + c.offset, c.length};
    }
  }
  return nv;
}

}  // namespace

void Session::send(iovec* v, int n) noexcept {
  MutexLock l(send_mu_);
  send_locked(v, n);
}

void Session::send_locked(iovec* v, int n) noexcept {
  if (dead_.load(std::memory_order_relaxed)) return;
  if (!t_.writev_full(v, n)) kill_locked();
}

// The connection is dead: the reader sees EOF and the session ends.
void Session::kill_locked() noexcept {
  dead_.store(true, std::memory_order_relaxed);
  ::shutdown(fd_, SHUT_RDWR);
}

void Session::send_ok(const Request& r) noexcept {
  std::uint8_t h[kChunkHeaderSize];
  iovec v{h, kSimpleReplySize};
  if (neg_.structured) {
    encode_chunk_header(h, r.cookie, kChunkNone, 0);
    v.iov_len = kChunkHeaderSize;
  } else {
    encode_simple_reply(h, r.cookie, 0);
  }
  send(&v, 1);
}

void Session::send_error(const Request& r, std::uint32_t error) noexcept {
  std::uint8_t h[kErrorChunkSize];
  iovec v{h, kSimpleReplySize};
  if (neg_.structured) {
    encode_error_chunk(h, r.cookie, error);
    v.iov_len = kErrorChunkSize;
  } else {
    encode_simple_reply(h, r.cookie, error);
  }
  send(&v, 1);
}

void Session::send_read(const Request& r, std::uint8_t* buf) noexcept {
  if (neg_.structured && !(r.flags & kCmdFlagDf) && send_read_with_holes(r, buf)) return;
  std::uint8_t h[kDataChunkHeaderSize];
  iovec v[2] = {{h, kSimpleReplySize}, {buf, r.length}};
  if (neg_.structured) {
    encode_data_chunk_header(h, r.cookie, r.offset, r.length, kChunkFlagDone);
    v[0].iov_len = kDataChunkHeaderSize;
  } else {
    encode_simple_reply(h, r.cookie, 0);
  }
  send(v, 2);
}

// A structured READ reply in DATA and HOLE chunks (split_read). Returns false (nothing
// sent) when the data has no hole, or no memory for the chunks: the caller then sends
// one data chunk. The chunks go out under one hold of the send lock.
bool Session::send_read_with_holes(const Request& r, const std::uint8_t* buf) noexcept {
  const std::size_t max_chunks = max_read_chunks(r.length);
  ReadChunk stack_chunks[kStackChunks];
  ChunkHeader stack_hdrs[kStackChunks];
  iovec stack_v[2 * kStackChunks];
  ReadChunk* chunks = stack_chunks;
  ChunkHeader* hdrs = stack_hdrs;
  iovec* v = stack_v;
  CountedArray<ReadChunk> heap_chunks;
  CountedArray<ChunkHeader> heap_hdrs;
  CountedArray<iovec> heap_v;
  if (max_chunks > kStackChunks) {  // on demand only: a preallocated read is one piece
    heap_chunks = CountedArray<ReadChunk>(opt_.stats, max_chunks);
    heap_hdrs = CountedArray<ChunkHeader>(opt_.stats, max_chunks);
    heap_v = CountedArray<iovec>(opt_.stats, 2 * max_chunks);
    if (!heap_chunks || !heap_hdrs || !heap_v) return false;  // no memory: one data chunk
    chunks = heap_chunks.get();
    hdrs = heap_hdrs.get();
    v = heap_v.get();
  }
  const std::size_t nv = read_chunks(r, r.offset, buf, r.length, true, chunks, hdrs, v);
  if (nv == 0) return false;
  MutexLock l(send_mu_);  // one hold: a chunk's header and data are never split
  for (std::size_t i = 0; i < nv; i += kMaxIov) {
    send_locked(&v[i], static_cast<int>(std::min(kMaxIov, nv - i)));
  }
  return true;
}

// A READ longer than the piece, under one hold of the send lock: the first piece was read
// already; each next one is read into the same piece once the last went out. Structured
// without DF: each piece is its own chunks (holes included), and an error ends the reply
// with an error chunk. Simple replies and DF have one header for the whole length: an error
// after it cannot be told, so the connection is closed (the client sees the reply cut).
void Session::send_read_in_pieces(const Request& r, std::uint8_t* piece,
                                  std::uint32_t first) noexcept {
  const bool chunked = neg_.structured && !(r.flags & kCmdFlagDf);
  const std::size_t size = pool_.piece_bytes();
  MutexLock l(send_mu_);
  if (!chunked) {
    std::uint8_t h[kDataChunkHeaderSize];
    iovec v[2] = {{h, kSimpleReplySize}, {piece, first}};
    if (neg_.structured) {
      encode_data_chunk_header(h, r.cookie, r.offset, r.length, kChunkFlagDone);
      v[0].iov_len = kDataChunkHeaderSize;
    } else {
      encode_simple_reply(h, r.cookie, 0);
    }
    send_locked(v, 2);
  }
  for (std::uint32_t done = 0, n = first;;) {
    const std::uint64_t at = r.offset + done;
    const bool last = done + n == r.length;
    if (chunked) {
      ReadChunk chunks[kStackChunks];
      ChunkHeader hdrs[kStackChunks];
      iovec v[2 * kStackChunks];
      std::size_t nv = read_chunks(r, at, piece, n, last, chunks, hdrs, v);
      if (nv == 0) {  // no hole: one data chunk
        encode_data_chunk_header(hdrs[0].data(), r.cookie, at, n, last ? kChunkFlagDone : 0);
        v[0] = {hdrs[0].data(), kDataChunkHeaderSize};
        v[1] = {piece, n};
        nv = 2;
      }
      send_locked(v, static_cast<int>(nv));
    } else if (done > 0) {
      iovec v{piece, n};
      send_locked(&v, 1);
    }
    done += n;
    if (last || dead_.load(std::memory_order_relaxed)) return;
    n = static_cast<std::uint32_t>(std::min<std::size_t>(size, r.length - done));
    if (const std::uint32_t e = backend_.read(r.offset + done, n, piece)) {
      if (!chunked) {
        logf(log_,
             "read error at offset %llu in the middle of a %u-byte reply; closing the "
             "connection (the reply's header is sent)",
             static_cast<unsigned long long>(r.offset) + done, r.length);
        kill_locked();
        return;
      }
      std::uint8_t h[kErrorChunkSize];
      encode_error_chunk(h, r.cookie, e);
      iovec v{h, kErrorChunkSize};
      send_locked(&v, 1);
      return;
    }
  }
}

// The extents are rewritten in place into their wire form.
void Session::send_extents(const Request& r, Extent* extents, std::size_t n) noexcept {
  std::uint8_t h[kBlockStatusHeaderSize];
  encode_block_status_header(h, r.cookie, n);
  for (std::size_t i = 0; i < n; i++) {
    const Extent x = extents[i];
    encode_extent(reinterpret_cast<std::uint8_t*>(&extents[i]), x.length, x.flags);
  }
  iovec v[2] = {{h, sizeof h}, {extents, kExtentSize * n}};
  send(v, 2);
}

}  // namespace uzram::nbd
