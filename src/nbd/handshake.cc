// nbd/handshake.cc - fixed newstyle negotiation: options GO, INFO, LIST, ABORT,
// EXPORT_NAME, STRUCTURED_REPLY, LIST/SET_META_CONTEXT (base:allocation), STARTTLS; anything
// else is answered NBD_REP_ERR_UNSUP. One handler per option (Negotiation::on_*).
#include "nbd/handshake.h"

#include <algorithm>
#include <memory>
#include <new>
#include <span>
#include <string_view>

#include "nbd/exports.h"
#include "nbd/stats.h"
#include "nbd/store_backend.h"
#include "nbd/tls.h"
#include "nbd/transport.h"

namespace uzram::nbd {
namespace {

constexpr unsigned kMaxOptions = 256;  // options per handshake before we give up
constexpr std::uint32_t kContextId = kBaseAllocationId;

bool reply(Transport& t, std::uint32_t opt, std::uint32_t type, const void* data = nullptr,
           std::uint32_t len = 0, const void* more = nullptr, std::uint32_t more_len = 0) {
  std::uint8_t h[20];
  put64(h, kOptReplyMagic);
  put32(h + 8, opt);
  put32(h + 12, type);
  put32(h + 16, len + more_len);
  iovec v[3] = {{h, sizeof h}, {const_cast<void*>(data), len}, {const_cast<void*>(more), more_len}};
  return t.writev_full(v, 3);
}

bool reply_error(Transport& t, std::uint32_t opt, std::uint32_t type, std::string_view msg) {
  return reply(t, opt, type, msg.data(), static_cast<std::uint32_t>(msg.size()));
}

bool send_info_export(Transport& t, std::uint32_t opt, const Backend& b, std::uint64_t size,
                      bool structured) {
  std::uint8_t d[12];
  put16(d, kInfoExport);
  put64(d + 2, size);
  put16(d + 10, transmission_flags(b, structured));
  return reply(t, opt, kRepInfo, d, sizeof d);
}

// Minimum 1 (byte-granular requests are served), preferred the backend's unit (a store's
// unit_size: whole units are stored as units), maximum the largest payload.
bool send_info_block_size(Transport& t, std::uint32_t opt, const Backend& b) {
  std::uint8_t d[14];
  put16(d, kInfoBlockSize);
  put32(d + 2, 1);
  put32(d + 6, b.preferred_block_size());
  put32(d + 10, kMaxPayload);
  return reply(t, opt, kRepInfo, d, sizeof d);
}

bool send_info_name(Transport& t, std::uint32_t opt, std::span<const std::uint8_t> name) {
  std::uint8_t type[2];
  put16(type, kInfoName);
  return reply(t, opt, kRepInfo, type, 2, name.data(), static_cast<std::uint32_t>(name.size()));
}

bool send_context(Transport& t, std::uint32_t opt) {
  const std::string_view name = kBaseAllocation;
  std::uint8_t id[4];
  put32(id, kContextId);
  return reply(t, opt, kRepMetaContext, id, 4, name.data(),
               static_cast<std::uint32_t>(name.size()));
}

// Logs why the client is being dropped: `what`, or the deadline when it passed.
void gone(const Transport& t, const LogFn& log, const char* what) {
  if (t.deadline_passed()) {
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

// One connection's negotiation: the state its steps and option handlers share.
class Negotiation {
 public:
  Negotiation(int sock, std::unique_ptr<Transport>& transport, Exports& exports,
              const TlsPolicy& tls, const Deadline& deadline, const LogFn& log,
              ServerStats* stats) noexcept
      : sock_(sock),
        transport_(transport),
        exports_(exports),
        tls_(tls),
        deadline_(deadline),
        log_(log),
        data_(stats, kMaxOptionLength) {}

  bool ready() const noexcept { return static_cast<bool>(data_); }

  // The whole negotiation; true when the client entered transmission (*out filled).
  bool run(bool greeted, Handshaken* out) noexcept {
    if (!greet(greeted) || !read_client_flags()) return false;
    for (unsigned count = 0;; count++) {
      if (count == kMaxOptions) {
        logf(log_, "too many options; closing");
        return false;
      }
      switch (next_option()) {
        case Step::next: continue;
        case Step::enter:
          out->neg = neg_;
          out->backend = std::move(claimed_);
          return true;
        case Step::close: return false;
        case Step::lost: gone(t(), log_, "client vanished during negotiation"); return false;
      }
    }
  }

 private:
  // After an option: read the next one, enter transmission, close (the reason is logged,
  // or needs none), or close because an answer could not be sent.
  enum class Step { next, enter, close, lost };

  Transport& t() noexcept { return *transport_; }
  static Step answered(bool sent) noexcept { return sent ? Step::next : Step::lost; }

  bool greet(bool greeted) noexcept;
  bool read_client_flags() noexcept;
  Step next_option() noexcept;
  Step dispatch(std::uint32_t opt, std::span<const std::uint8_t> d) noexcept;
  Step on_export_name(std::span<const std::uint8_t> d) noexcept;
  Step on_abort() noexcept;
  Step on_list(std::span<const std::uint8_t> d) noexcept;
  Step on_info_or_go(std::uint32_t opt, std::span<const std::uint8_t> d) noexcept;
  Step on_structured_reply(std::span<const std::uint8_t> d) noexcept;
  Step on_meta_context(std::uint32_t opt, std::span<const std::uint8_t> d) noexcept;
  Step on_starttls(std::span<const std::uint8_t> d) noexcept;

  const int sock_;
  std::unique_ptr<Transport>& transport_;  // replaced by STARTTLS
  Exports& exports_;
  const TlsPolicy& tls_;
  const Deadline& deadline_;
  const LogFn& log_;
  CountedArray<std::uint8_t> data_;   // one option's data, kMaxOptionLength bytes
  bool no_zeroes_ = false;            // the client's NBD_FLAG_C_NO_ZEROES
  Negotiated neg_;                    // so far
  std::shared_ptr<Backend> claimed_;  // GO / EXPORT_NAME: the export entered (open_user done)
};

// The greeting (unless sent already), then the client's flags.
bool Negotiation::greet(bool greeted) noexcept {
  std::uint8_t hello[18];
  greeting(hello);
  if (!greeted && !t().write_full(hello, sizeof hello)) {
    gone(t(), log_, "client vanished before the greeting");
    return false;
  }
  return true;
}

bool Negotiation::read_client_flags() noexcept {
  std::uint8_t cf[4];
  if (!t().read_full(cf, 4)) {
    gone(t(), log_, "client closed before sending its flags");
    return false;
  }
  const std::uint32_t client_flags = get32(cf);
  if ((client_flags & ~(kClientFixedNewstyle | kClientNoZeroes)) != 0) {
    logf(log_, "unknown client flags; closing");
    return false;
  }
  no_zeroes_ = (client_flags & kClientNoZeroes) != 0;
  return true;
}

// Reads one option (header and data) and answers it; oversized data is skipped and
// refused, and with TLS required only STARTTLS and ABORT are served in clear text.
Negotiation::Step Negotiation::next_option() noexcept {
  std::uint8_t h[16];
  if (!t().read_full(h, sizeof h)) {
    gone(t(), log_, "client closed during negotiation");
    return Step::close;
  }
  if (get64(h) != kIHaveOpt) {
    logf(log_, "bad option magic; closing");
    return Step::close;
  }
  const std::uint32_t opt = get32(h + 8);
  const std::uint32_t len = get32(h + 12);
  if (len > kMaxOptionLength) {
    if (len > kMaxOptionSkip || !t().skip_full(len)) {
      gone(t(), log_, "option data too long; closing");
      return Step::close;
    }
    return reply_error(t(), opt, kRepErrTooBig, "option data too long") ? Step::next : Step::close;
  }
  if (len > 0 && !t().read_full(data_.get(), len)) {
    gone(t(), log_, "client closed during an option");
    return Step::close;
  }
  if (tls_.required && !t().is_tls() && opt != kOptStartTls && opt != kOptAbort) {
    if (opt == kOptExportName) {
      logf(log_, "NBD_OPT_EXPORT_NAME before STARTTLS while TLS is required; closing");
      return Step::close;
    }
    return reply_error(t(), opt, kRepErrTlsReqd, "TLS is required: send NBD_OPT_STARTTLS first")
               ? Step::next
               : Step::close;
  }
  return dispatch(opt, std::span<const std::uint8_t>(data_.get(), len));
}

Negotiation::Step Negotiation::dispatch(std::uint32_t opt,
                                        std::span<const std::uint8_t> d) noexcept {
  switch (opt) {
    case kOptExportName: return on_export_name(d);
    case kOptAbort: return on_abort();
    case kOptList: return on_list(d);
    case kOptInfo:
    case kOptGo: return on_info_or_go(opt, d);
    case kOptStructuredReply: return on_structured_reply(d);
    case kOptListMetaContext:
    case kOptSetMetaContext: return on_meta_context(opt, d);
    case kOptStartTls: return on_starttls(d);
    default: return answered(reply_error(t(), opt, kRepErrUnsup, "option not supported"));
  }
}

// The old style: the name is the option's data; no reply header, the size and flags (and
// 124 zeroes unless NO_ZEROES). An unknown or unavailable export can only be closed.
Negotiation::Step Negotiation::on_export_name(std::span<const std::uint8_t> d) noexcept {
  std::shared_ptr<Backend> b = exports_.find(as_sv(d));
  if (!b) {
    logf(log_, "NBD_OPT_EXPORT_NAME: no export named '%.*s'; closing",
         static_cast<int>(std::min<std::size_t>(d.size(), 64)), as_sv(d).data());
    return Step::close;
  }
  std::uint64_t size = 0;
  if (!b->open_user(&size)) {
    logf(log_, "NBD_OPT_EXPORT_NAME: the export is not available (no disksize); closing");
    return Step::close;
  }
  std::uint8_t r[10 + 124] = {};
  put64(r, size);
  put16(r + 8, transmission_flags(*b, neg_.structured));  // negotiation so far holds
  if (!t().write_full(r, no_zeroes_ ? 10 : sizeof r)) {
    b->close_user();
    return Step::close;
  }
  neg_.size = size;
  claimed_ = std::move(b);
  return Step::enter;
}

Negotiation::Step Negotiation::on_abort() noexcept {
  (void)reply(t(), kOptAbort, kRepAck);
  logf(log_, "client aborted the handshake");
  return Step::close;
}

Negotiation::Step Negotiation::on_list(std::span<const std::uint8_t> d) noexcept {
  if (!d.empty()) {
    return answered(reply_error(t(), kOptList, kRepErrInvalid, "NBD_OPT_LIST takes no data"));
  }
  bool ok = true;
  for (const std::string& name : exports_.list()) {  // each: u32 length, the name
    std::uint8_t len[4];
    put32(len, static_cast<std::uint32_t>(name.size()));
    ok = ok && reply(t(), kOptList, kRepServer, len, 4, name.data(),
                     static_cast<std::uint32_t>(name.size()));
  }
  return answered(ok && reply(t(), kOptList, kRepAck));
}

// INFO describes the export; GO does the same and enters transmission.
Negotiation::Step Negotiation::on_info_or_go(std::uint32_t opt,
                                             std::span<const std::uint8_t> d) noexcept {
  InfoRequest ir;
  if (!parse_info_request(d, &ir)) {
    return answered(reply_error(t(), opt, kRepErrInvalid, "malformed NBD_OPT_INFO/GO request"));
  }
  std::shared_ptr<Backend> b = exports_.find(as_sv(ir.name));
  if (!b) {
    return answered(reply_error(t(), opt, kRepErrUnknown, "no export of that name"));
  }
  // GO claims the export first, so the size sent is the one served (a reset or a new
  // disksize is refused from now on). INFO of an export with nothing to serve is refused
  // as GO would be.
  std::uint64_t size = b->size();
  if (opt == kOptGo ? !b->open_user(&size) : size == 0) {
    return answered(
        reply_error(t(), opt, kRepErrUnknown, "export not available: the store has no disksize"));
  }
  bool name_wanted = false;
  for (std::uint16_t i = 0; i < ir.count; i++) {
    name_wanted |= get16(ir.types.data() + 2 * i) == kInfoName;
  }
  const bool ok = send_info_export(t(), opt, *b, size, neg_.structured) &&
                  (!name_wanted || send_info_name(t(), opt, ir.name)) &&
                  send_info_block_size(t(), opt, *b) && reply(t(), opt, kRepAck);
  if (opt != kOptGo) return answered(ok);
  if (!ok) {
    b->close_user();
    return Step::close;
  }
  neg_.size = size;
  claimed_ = std::move(b);
  return Step::enter;
}

Negotiation::Step Negotiation::on_structured_reply(std::span<const std::uint8_t> d) noexcept {
  if (!d.empty()) {
    return answered(reply_error(t(), kOptStructuredReply, kRepErrInvalid,
                                "NBD_OPT_STRUCTURED_REPLY takes no data"));
  }
  neg_.structured = true;
  return answered(reply(t(), kOptStructuredReply, kRepAck));
}

// base:allocation is the one context: LIST offers it for "base:", itself, or no query;
// SET selects it (structured replies first) or, without it, clears the selection.
Negotiation::Step Negotiation::on_meta_context(std::uint32_t opt,
                                               std::span<const std::uint8_t> d) noexcept {
  if (opt == kOptSetMetaContext && !neg_.structured) {
    return answered(
        reply_error(t(), opt, kRepErrInvalid, "structured replies were not negotiated"));
  }
  bool match = false;
  std::uint32_t queries = 0;
  const bool parsed = parse_meta_request(d, [&](std::span<const std::uint8_t> q) {
    queries++;
    const std::string_view s = as_sv(q);
    if (s == kBaseAllocation || (opt == kOptListMetaContext && s == "base:")) match = true;
  });
  if (!parsed) {
    return answered(reply_error(t(), opt, kRepErrInvalid, "malformed meta context request"));
  }
  if (opt == kOptListMetaContext && queries == 0) match = true;
  if (opt == kOptSetMetaContext) neg_.meta_base_allocation = match;
  return answered((!match || send_context(t(), opt)) && reply(t(), opt, kRepAck));
}

// Upgrades the transport to TLS; what was negotiated in clear text does not carry over.
Negotiation::Step Negotiation::on_starttls(std::span<const std::uint8_t> d) noexcept {
  if (tls_.context == nullptr) {
    return answered(
        reply_error(t(), kOptStartTls, kRepErrUnsup, "TLS is not enabled on this server"));
  }
  if (t().is_tls()) {
    return answered(reply_error(t(), kOptStartTls, kRepErrInvalid, "TLS is already active"));
  }
  if (!d.empty()) {
    return answered(
        reply_error(t(), kOptStartTls, kRepErrInvalid, "NBD_OPT_STARTTLS takes no data"));
  }
  if (!reply(t(), kOptStartTls, kRepAck)) return Step::close;
  auto secure = tls_.context->accept(sock_, deadline_, log_);
  if (!secure) return Step::close;
  transport_ = std::move(secure);
  neg_ = Negotiated{};
  return Step::next;
}

}  // namespace

bool send_greeting(int sock) noexcept {
  std::uint8_t hello[18];
  greeting(hello);
  return ::send(sock, hello, sizeof hello, MSG_NOSIGNAL | MSG_DONTWAIT) == sizeof hello;
}

bool handshake(int sock, std::unique_ptr<Transport>& transport, Exports& exports,
               const TlsPolicy& tls, const Deadline& deadline, Handshaken* out, const LogFn& log,
               bool greeted, std::span<const std::uint8_t> preread, ServerStats* stats) noexcept {
  transport.reset(new (std::nothrow) FdTransport(sock, preread.data(), preread.size()));
  Negotiation n(sock, transport, exports, tls, deadline, log, stats);
  if (!transport || !n.ready()) {
    logf(log, "out of memory for a new connection; closing");
    return false;
  }
  transport->set_deadline(deadline);
  return n.run(greeted, out);
}

bool handshake(int sock, std::unique_ptr<Transport>& transport, Backend& backend,
               const TlsPolicy& tls, const Deadline& deadline, Negotiated* out, const LogFn& log,
               bool greeted, std::span<const std::uint8_t> preread) noexcept {
  SingleExport one(backend);
  Handshaken h;
  if (!handshake(sock, transport, one, tls, deadline, &h, log, greeted, preread)) return false;
  *out = h.neg;
  return true;
}

}  // namespace uzram::nbd
