// tests/nbd/session_testing.h - a session on one end of a socketpair, a raw NBD client on
// the other, and a memory backend: for the transmission tests (session_test.cc,
// session_alloc_test.cc).
#ifndef UZRAM_TESTS_NBD_SESSION_TESTING_H_
#define UZRAM_TESTS_NBD_SESSION_TESTING_H_

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "nbd/protocol.h"
#include "nbd/session.h"
#include "nbd/store_backend.h"
#include "nbd/transport.h"

namespace uzram::nbd::testing {

// Bytes in memory; reads of [fail_read_at, ...) fail with EIO. Block status: per 4 KiB
// block, all-zero blocks are holes.
class MemoryBackend final : public Backend {
 public:
  explicit MemoryBackend(std::size_t size) : data_(size) {}
  std::uint64_t size() const noexcept override { return data_.size(); }
  std::uint32_t read(std::uint64_t off, std::uint32_t len, void* buf) noexcept override {
    if (off + len > fail_read_at.load()) return kEio;
    std::lock_guard l(mu_);
    std::memcpy(buf, data_.data() + off, len);
    return 0;
  }
  std::uint32_t write(std::uint64_t off, std::uint32_t len, const void* buf) noexcept override {
    std::lock_guard l(mu_);
    std::memcpy(data_.data() + off, buf, len);
    return 0;
  }
  std::uint32_t trim(std::uint64_t off, std::uint32_t len) noexcept override {
    return zero(off, len, false);
  }
  std::uint32_t zero(std::uint64_t off, std::uint32_t len, bool) noexcept override {
    std::lock_guard l(mu_);
    std::memset(data_.data() + off, 0, len);
    return 0;
  }
  std::uint32_t block_status(std::uint64_t off, std::uint32_t len, Extent* out, std::size_t max,
                             std::size_t* count) noexcept override {
    std::lock_guard l(mu_);
    std::size_t n = 0;
    for (std::uint64_t at = off; at < off + len && n < max;) {
      const std::uint64_t end = std::min<std::uint64_t>((at / 4096 + 1) * 4096, off + len);
      bool zero = true;
      for (std::uint64_t i = at; i < end && zero; i++) zero = data_[i] == 0;
      out[n++] = {static_cast<std::uint32_t>(end - at), zero ? kStateHole | kStateZero : 0u};
      at = end;
    }
    *count = n;
    return 0;
  }
  std::vector<std::uint8_t> copy() {
    std::lock_guard l(mu_);
    return data_;
  }
  std::atomic<std::uint64_t> fail_read_at{~std::uint64_t{0}};

 private:
  std::mutex mu_;
  std::vector<std::uint8_t> data_;
};

// One reply, simple or structured (all chunks until DONE, put together).
struct Reply {
  std::uint64_t cookie = 0;
  std::uint32_t error = 0;
  bool closed = false;             // the connection ended instead
  std::vector<std::uint8_t> data;  // READ: the bytes; holes are zeros
  std::vector<bool> covered;       // READ (structured): bytes some chunk covered
  unsigned chunks = 0;             // structured: chunks received
  std::vector<std::pair<std::uint32_t, std::uint32_t>> extents;  // BLOCK_STATUS
};

inline bool read_all(int fd, void* buf, std::size_t n) {
  auto* p = static_cast<std::uint8_t*>(buf);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}
inline bool write_all(int fd, const void* buf, std::size_t n) {
  const auto* p = static_cast<const std::uint8_t*>(buf);
  while (n > 0) {
    const ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// A transport that pauses after every write of the thread that reads requests (the
// session's reader): a reader preempted right after it sent a reply, while a quick client
// sends its next request.
class ReaderPausingTransport final : public Transport {
 public:
  ReaderPausingTransport(Transport& t, std::chrono::microseconds pause) : t_(t), pause_(pause) {}
  bool read_full(void* buf, std::size_t n) noexcept override {
    reader_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    return t_.read_full(buf, n);
  }
  bool writev_full(iovec* iov, int count) noexcept override {
    const bool ok = t_.writev_full(iov, count);
    if (reader_.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
      std::this_thread::sleep_for(pause_);
    }
    return ok;
  }
  bool input_pending() noexcept override { return t_.input_pending(); }

 private:
  Transport& t_;
  const std::chrono::microseconds pause_;
  std::atomic<std::thread::id> reader_{};
};

// A session served on a thread, and the client end. `reader_pause`: the reader sleeps that
// long after each reply it sends itself (ReaderPausingTransport).
class SessionPair {
 public:
  SessionPair(Backend& b, bool structured, const SessionOptions& o,
              std::chrono::microseconds reader_pause = {})
      : structured_(structured) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    client = sv[0];
    server_ = sv[1];
    neg_.size = b.size();
    neg_.structured = structured;
    neg_.meta_base_allocation = structured;
    thread_ = std::thread([this, &b, o, reader_pause] {
      FdTransport t(server_);
      if (reader_pause.count() > 0) {
        ReaderPausingTransport p(t, reader_pause);
        serve_session(server_, p, b, neg_, log_, o);
      } else {
        serve_session(server_, t, b, neg_, log_, o);
      }
    });
  }
  ~SessionPair() {
    ::shutdown(client, SHUT_WR);
    thread_.join();
    ::close(client);
    ::close(server_);
  }
  SessionPair(const SessionPair&) = delete;
  SessionPair& operator=(const SessionPair&) = delete;

  bool request(std::uint16_t type, std::uint64_t cookie, std::uint64_t off, std::uint32_t len,
               const std::uint8_t* payload = nullptr, std::uint16_t flags = 0) {
    std::uint8_t h[kRequestSize];
    put32(h, kRequestMagic);
    put16(h + 4, flags);
    put16(h + 6, type);
    put64(h + 8, cookie);
    put64(h + 16, off);
    put32(h + 24, len);
    return write_all(client, h, sizeof h) && (!payload || write_all(client, payload, len));
  }

  // The next reply; `reads` says each cookie's READ length (absent: no data).
  Reply reply(const std::map<std::uint64_t, std::pair<std::uint64_t, std::uint32_t>>& reads) {
    Reply r;
    std::uint8_t h[kChunkHeaderSize];
    if (!structured_) {
      if (!read_all(client, h, kSimpleReplySize)) return closed(r);
      EXPECT_EQ(get32(h), kSimpleReplyMagic);
      r.error = get32(h + 4);
      r.cookie = get64(h + 8);
      const auto it = reads.find(r.cookie);
      if (r.error == 0 && it != reads.end()) {
        r.data.resize(it->second.second);
        if (!read_all(client, r.data.data(), r.data.size())) return closed(r);
      }
      return r;
    }
    for (;;) {
      if (!read_all(client, h, kChunkHeaderSize)) return closed(r);
      EXPECT_EQ(get32(h), kStructuredReplyMagic);
      const std::uint16_t flags = get16(h + 4), type = get16(h + 6);
      r.cookie = get64(h + 8);
      std::vector<std::uint8_t> p(get32(h + 16));
      if (!p.empty() && !read_all(client, p.data(), p.size())) return closed(r);
      r.chunks++;
      const auto it = reads.find(r.cookie);
      if (type == kChunkError) r.error = get32(p.data());
      if (type == kChunkOffsetData || type == kChunkOffsetHole) {
        EXPECT_NE(it, reads.end());
        const std::uint64_t base = it->second.first;
        if (r.data.empty()) {
          r.data.assign(it->second.second, 0xee);
          r.covered.assign(it->second.second, false);
        }
        const std::uint64_t at = get64(p.data()) - base;
        const std::size_t n = type == kChunkOffsetHole ? get32(p.data() + 8) : p.size() - 8;
        EXPECT_LE(at + n, r.data.size());
        if (at + n > r.data.size()) return r;
        for (std::size_t i = 0; i < n; i++) {
          EXPECT_FALSE(r.covered[at + i]) << "byte " << at + i << " sent twice";
          r.covered[at + i] = true;
          r.data[at + i] = type == kChunkOffsetHole ? 0 : p[8 + i];
        }
      }
      if (type == kChunkBlockStatus) {
        for (std::size_t i = 4; i + 8 <= p.size(); i += 8)
          r.extents.emplace_back(get32(p.data() + i), get32(p.data() + i + 4));
      }
      if (flags & kChunkFlagDone) return r;
    }
  }

  int client = -1;

 private:
  static Reply closed(Reply r) {
    r.closed = true;
    return r;
  }
  bool structured_;
  int server_ = -1;
  Negotiated neg_;
  LogFn log_;
  std::thread thread_;
};

}  // namespace uzram::nbd::testing

#endif  // UZRAM_TESTS_NBD_SESSION_TESTING_H_
