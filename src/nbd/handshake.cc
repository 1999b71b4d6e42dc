// nbd/handshake.cc - fixed newstyle negotiation: options GO, INFO, LIST, ABORT,
// EXPORT_NAME, STRUCTURED_REPLY, LIST/SET_META_CONTEXT (base:allocation); anything else is
// answered NBD_REP_ERR_UNSUP.
#include "nbd/handshake.h"

#include <new>
#include <string_view>

#include "nbd/store_backend.h"
#include "nbd/tls.h"
#include "nbd/transport.h"

namespace uzram::nbd {
namespace {

constexpr unsigned kMaxOptions = 256;  // options per handshake before we give up
constexpr std::uint32_t kContextId = kBaseAllocationId;

bool reply(Transport& fd, std::uint32_t opt, std::uint32_t type, const void* data = nullptr,
           std::uint32_t len = 0, const void* more = nullptr, std::uint32_t more_len = 0) {
  std::uint8_t h[20];
  put64(h, kOptReplyMagic);
  put32(h + 8, opt);
  put32(h + 12, type);
  put32(h + 16, len + more_len);
  iovec v[3] = {{h, sizeof h}, {const_cast<void*>(data), len}, {const_cast<void*>(more), more_len}};
  return fd.writev_full(v, 3);
}

bool reply_error(Transport& fd, std::uint32_t opt, std::uint32_t type, std::string_view msg) {
  return reply(fd, opt, type, msg.data(), static_cast<std::uint32_t>(msg.size()));
}

bool send_info_export(Transport& fd, std::uint32_t opt, const Backend& b, std::uint64_t size,
                      bool structured) {
  std::uint8_t d[12];
  put16(d, kInfoExport);
  put64(d + 2, size);
  put16(d + 10, transmission_flags(b, structured));
  return reply(fd, opt, kRepInfo, d, sizeof d);
}

bool send_info_block_size(Transport& fd, std::uint32_t opt) {
  std::uint8_t d[14];
  put16(d, kInfoBlockSize);
  put32(d + 2, 1);
  put32(d + 6, 4096);
  put32(d + 10, kMaxPayload);
  return reply(fd, opt, kRepInfo, d, sizeof d);
}

bool send_context(Transport& fd, std::uint32_t opt) {
  const std::string_view name = kBaseAllocation;
  std::uint8_t id[4];
  put32(id, kContextId);
  return reply(fd, opt, kRepMetaContext, id, 4, name.data(),
               static_cast<std::uint32_t>(name.size()));
}

// Logs why the client is being dropped: `what`, or the deadline when it passed.
void gone(const Transport& fd, const LogFn& log, const char* what) {
  if (fd.deadline_passed()) {
    logf(log, "handshake not finished before its deadline; closing");
  } else {
    logf(log, "%s", what);
  }
}

std::string_view as_sv(std::span<const std::uint8_t> s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

}  // namespace

std::uint16_t transmission_flags(const Backend& b, bool structured) noexcept {
  std::uint16_t f = kTxHasFlags;
  if (b.can_flush()) f |= kTxSendFlush;
  if (b.can_fua()) f |= kTxSendFua;
  if (b.can_trim()) f |= kTxSendTrim;
  if (b.can_zero()) f |= kTxSendWriteZeroes;
  if (b.can_zero() && b.can_fast_zero()) f |= kTxSendFastZero;
  if (b.can_multi_conn()) f |= kTxCanMultiConn;
  if (structured) f |= kTxSendDf;
  return f;
}

namespace {

void greeting(std::uint8_t (&hello)[18]) noexcept {
  put64(hello, kNbdMagic);
  put64(hello + 8, kIHaveOpt);
  put16(hello + 16, kFlagFixedNewstyle | kFlagNoZeroes);
}

}  // namespace

bool send_greeting(int sock) noexcept {
  std::uint8_t hello[18];
  greeting(hello);
  return ::send(sock, hello, sizeof hello, MSG_NOSIGNAL | MSG_DONTWAIT) == sizeof hello;
}

bool handshake(int sock, std::unique_ptr<Transport>& transport, Backend& backend,
               const TlsPolicy& tls, const Deadline& deadline, Negotiated* out, const LogFn& log,
               bool greeted, std::span<const std::uint8_t> preread) noexcept {
  transport.reset(new (std::nothrow) FdTransport(sock, preread.data(), preread.size()));
  std::unique_ptr<std::uint8_t[]> data(new (std::nothrow) std::uint8_t[kMaxOptionLength]);
  if (!transport || !data) {
    logf(log, "out of memory for a new connection; closing");
    return false;
  }
  transport->set_deadline(deadline);
  std::uint8_t hello[18];
  greeting(hello);
  if (!greeted && !transport->write_full(hello, sizeof hello)) {
    gone(*transport, log, "client vanished before the greeting");
    return false;
  }
  std::uint8_t cf[4];
  if (!transport->read_full(cf, 4)) {
    gone(*transport, log, "client closed before sending its flags");
    return false;
  }
  const std::uint32_t client_flags = get32(cf);
  if ((client_flags & ~(kClientFixedNewstyle | kClientNoZeroes)) != 0) {
    logf(log, "unknown client flags; closing");
    return false;
  }
  const bool no_zeroes = (client_flags & kClientNoZeroes) != 0;

  Negotiated neg;
  for (unsigned count = 0;; count++) {
    if (count == kMaxOptions) {
      logf(log, "too many options; closing");
      return false;
    }
    Transport& fd = *transport;
    std::uint8_t h[16];
    if (!fd.read_full(h, sizeof h)) {
      gone(fd, log, "client closed during negotiation");
      return false;
    }
    if (get64(h) != kIHaveOpt) {
      logf(log, "bad option magic; closing");
      return false;
    }
    const std::uint32_t opt = get32(h + 8);
    const std::uint32_t len = get32(h + 12);
    if (len > kMaxOptionLength) {
      if (len > kMaxOptionSkip || !fd.skip_full(len)) {
        gone(fd, log, "option data too long; closing");
        return false;
      }
      if (!reply_error(fd, opt, kRepErrTooBig, "option data too long")) return false;
      continue;
    }
    if (len > 0 && !fd.read_full(data.get(), len)) {
      gone(fd, log, "client closed during an option");
      return false;
    }
    const std::span<const std::uint8_t> d(data.get(), len);
    bool ok = true;
    if (tls.required && !fd.is_tls() && opt != kOptStartTls && opt != kOptAbort) {
      if (opt == kOptExportName) {
        logf(log, "NBD_OPT_EXPORT_NAME before STARTTLS while TLS is required; closing");
        return false;
      }
      if (!reply_error(fd, opt, kRepErrTlsReqd, "TLS is required: send NBD_OPT_STARTTLS first")) return false;
      continue;
    }
    switch (opt) {
      case kOptExportName: {
        std::uint64_t size = 0;
        if (!backend.open_user(&size)) {
          logf(log, "NBD_OPT_EXPORT_NAME: the export is not available (no disksize); closing");
          return false;
        }
        std::uint8_t r[10 + 124] = {};
        put64(r, size);
        put16(r + 8, transmission_flags(backend, neg.structured));  // negotiation so far holds
        if (!fd.write_full(r, no_zeroes ? 10 : sizeof r)) {
          backend.close_user();
          return false;
        }
        neg.size = size;
        *out = neg;
        return true;
      }
      case kOptAbort:
        (void)reply(fd, opt, kRepAck);
        logf(log, "client aborted the handshake");
        return false;
      case kOptList:
        if (len != 0) {
          ok = reply_error(fd, opt, kRepErrInvalid, "NBD_OPT_LIST takes no data");
        } else {
          std::uint8_t z[4] = {};  // one export: the default, ""
          ok = reply(fd, opt, kRepServer, z, 4) && reply(fd, opt, kRepAck);
        }
        break;
      case kOptInfo:
      case kOptGo: {
        InfoRequest ir;
        if (!parse_info_request(d, &ir)) {
          ok = reply_error(fd, opt, kRepErrInvalid, "malformed NBD_OPT_INFO/GO request");
          break;
        }
        // GO claims the export first, so the size sent is the one served (a reset or a
        // new disksize is refused from now on).
        std::uint64_t size = backend.size();
        if (opt == kOptGo && !backend.open_user(&size)) {
          ok = reply_error(fd, opt, kRepErrUnknown,
                           "export not available: the store has no disksize");
          break;
        }
        ok = send_info_export(fd, opt, backend, size, neg.structured);
        bool name_sent = false;
        for (std::uint16_t i = 0; ok && i < ir.count; i++) {
          const std::uint16_t t = get16(ir.types.data() + 2 * i);
          if (t == kInfoName && !name_sent) {
            std::uint8_t type[2];
            put16(type, kInfoName);
            ok = reply(fd, opt, kRepInfo, type, 2, ir.name.data(),
                       static_cast<std::uint32_t>(ir.name.size()));
            name_sent = true;
          }
        }
        ok = ok && send_info_block_size(fd, opt) && reply(fd, opt, kRepAck);
        if (opt == kOptGo) {
          if (!ok) {
            backend.close_user();
            return false;
          }
          neg.size = size;
          *out = neg;
          return true;
        }
        break;
      }
      case kOptStructuredReply:
        if (len != 0) {
          ok = reply_error(fd, opt, kRepErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data");
        } else {
          neg.structured = true;
          ok = reply(fd, opt, kRepAck);
        }
        break;
      case kOptListMetaContext:
      case kOptSetMetaContext: {
        if (opt == kOptSetMetaContext && !neg.structured) {
          ok = reply_error(fd, opt, kRepErrInvalid, "structured replies were not negotiated");
          break;
        }
        bool match = false;
        std::uint32_t queries = 0;
        const bool parsed = parse_meta_request(d, [&](std::span<const std::uint8_t> q) {
          queries++;
          const std::string_view s = as_sv(q);
          if (s == kBaseAllocation || (opt == kOptListMetaContext && s == "base:")) match = true;
        });
        if (!parsed) {
          ok = reply_error(fd, opt, kRepErrInvalid, "malformed meta context request");
          break;
        }
        if (opt == kOptListMetaContext && queries == 0) match = true;
        if (opt == kOptSetMetaContext) neg.meta_base_allocation = match;
        ok = (!match || send_context(fd, opt)) && reply(fd, opt, kRepAck);
        break;
      }
      case kOptStartTls:
        if (tls.context == nullptr) {
          ok = reply_error(fd, opt, kRepErrUnsup, "TLS is not enabled on this server");
        } else if (fd.is_tls()) {
          ok = reply_error(fd, opt, kRepErrInvalid, "TLS is already active");
        } else if (len != 0) {
          ok = reply_error(fd, opt, kRepErrInvalid, "NBD_OPT_STARTTLS takes no data");
        } else {
          if (!reply(fd, opt, kRepAck)) return false;
          auto secure = tls.context->accept(sock, deadline, log);
          if (!secure) return false;
          transport = std::move(secure);
          neg = Negotiated{};  // what was negotiated in clear text does not carry over
        }
        break;
      default:
        ok = reply_error(fd, opt, kRepErrUnsup, "option not supported");
        break;
    }
    if (!ok) {
      gone(*transport, log, "client vanished during negotiation");
      return false;
    }
  }
}

}  // namespace uzram::nbd
