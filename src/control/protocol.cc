// control/protocol.cc - the control protocol (control.h): default paths, errno names, and
// ControlServer::respond(), the dispatch of one request line to the served stores. The
// server's loop is in server.cc, the client in client.cc.
#include "control/control.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "control/internal.h"
#include "util/errno_text.h"
#include "uzram/pool.h"
#include "uzram/store.h"
#include "uzram/store_registry.h"

namespace uzram {
namespace control_internal {

std::string err_response(int e, std::string_view message) {
  std::string r = "ERR " + errno_name(std::error_code(e, std::generic_category())) + " ";
  for (char c : message.substr(0, 512))
    r += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
  return r + "\n";
}

std::string_view next_word(std::string_view* rest) {
  const std::size_t b = rest->find_first_not_of(' ');
  if (b == std::string_view::npos) {
    *rest = {};
    return {};
  }
  rest->remove_prefix(b);
  const std::size_t e = std::min(rest->find(' '), rest->size());
  std::string_view w = rest->substr(0, e);
  rest->remove_prefix(e);
  if (!rest->empty()) rest->remove_prefix(1);  // the one separator; VALUE is verbatim
  return w;
}

std::error_code sys_error(std::string* msg, const std::string& what) {
  const int e = errno;
  if (msg) *msg = what + ": " + errno_text(e);
  return {e, std::generic_category()};
}

}  // namespace control_internal

namespace {

using control_internal::err_response;
using control_internal::next_word;

struct ErrnoName {
  int value;
  const char* name;
};
constexpr ErrnoName kErrnoNames[] = {
    {EINVAL, "EINVAL"}, {ENOENT, "ENOENT"},
    {EACCES, "EACCES"}, {EBUSY, "EBUSY"},
    {ENOMEM, "ENOMEM"}, {ENOSPC, "ENOSPC"},
    {EIO, "EIO"},       {ERANGE, "ERANGE"},
    {E2BIG, "E2BIG"},   {EOPNOTSUPP, "EOPNOTSUPP"},
    {ENODEV, "ENODEV"}, {EAGAIN, "EAGAIN"},
    {EPROTO, "EPROTO"}, {EEXIST, "EEXIST"},
    {EPERM, "EPERM"},   {ENAMETOOLONG, "ENAMETOOLONG"},
};

std::string ok(std::string_view payload) {
  std::string r = "OK " + std::to_string(payload.size()) + "\n";
  r += payload;
  return r;
}

std::string err(std::error_code ec, std::string_view message) {
  if (ec == Errc::not_supported) return err_response(EACCES, message);  // wrong direction, as sysfs
  return err_response(ec.default_error_condition().value(), message);
}

std::string err(int e, std::string_view message) { return err_response(e, message); }

bool attr_exists(std::string_view name) {
  for (const std::string& a : Store::attr_names()) {
    if (a == name) return true;
  }
  return false;
}

std::string info(const Store& s) {
  const MmStat m = s.mm_stat();
  std::string r;
  auto kv = [&r](std::string_view k, const std::string& v) { (r += k) += ' ' + v + '\n'; };
  kv("name", s.name());
  kv("initstate", s.initialized() ? "1" : "0");
  kv("disksize", std::to_string(s.disksize()));
  kv("algorithm", s.comp_algorithm());
  kv("unit_size", std::to_string(s.unit_size()));
  kv("streams", std::to_string(s.streams()));
  const std::pair<const char*, std::uint64_t> fields[] = {
      {"orig_data_size", m.orig_data_size},    {"compr_data_size", m.compr_data_size},
      {"mem_used_total", m.mem_used_total},    {"mem_limit", m.mem_limit},
      {"mem_used_max", m.mem_used_max},        {"same_pages", m.same_pages},
      {"pages_compacted", m.pages_compacted},  {"huge_pages", m.huge_pages},
      {"huge_pages_since", m.huge_pages_since}};
  for (const auto& [k, v] : fields) kv(k, std::to_string(v));
  PoolStats ps;
  // Safe against reset: this server thread is the only writer of attributes, and a reset
  // or disksize is refused while an NBD connection (the other users) holds the store.
  if (const Pool* p = s.pool()) ps = p->stats();
  kv("zspages", std::to_string(ps.zspages));
  kv("objs_allocated", std::to_string(ps.objs_allocated));
  kv("objs_used", std::to_string(ps.objs_used));
  kv("users", std::to_string(s.users()));
  const IoCounts io = s.io_counts();
  kv("blocks_read", std::to_string(io.blocks_read));
  kv("blocks_written", std::to_string(io.blocks_written));
  kv("bd_writes", std::to_string(s.bd_stat().bd_writes));
  const StoreMemory mem = s.memory();
  const std::pair<const char*, std::uint64_t> memory[] = {
      {"mem_pool_frames", mem.pool_frames},
      {"mem_pool_idle_frames", mem.pool_idle_frames},
      {"mem_pool_metadata", mem.pool_metadata},
      {"mem_slot_table", mem.slot_table},
      {"mem_streams", mem.streams}};
  for (const auto& [k, v] : memory) kv(k, std::to_string(v));
  return r;
}

// zram-control's two attributes (the registry's hot_add and hot_remove).
std::string respond_zram_control(StoreRegistry* reg, std::string_view cmd, std::string_view attr,
                                 std::string_view rest) {
  if (cmd == "INFO") return err(EINVAL, "INFO: zram-control is not a store");
  if (attr.empty()) return err(EINVAL, std::string(cmd) + ": attribute name missing");
  if (attr != "hot_add" && attr != "hot_remove") {
    return err(ENOENT, std::string(attr.substr(0, 64)) +
                           ": no such attribute of zram-control (hot_add, hot_remove)");
  }
  const bool read = cmd == "READ";
  if (read && !rest.empty()) return err(EINVAL, "READ: takes one attribute name");
  if (attr == "hot_add" && !read) return err(EACCES, "hot_add: read-only attribute");
  if (attr == "hot_remove" && read) return err(EACCES, "hot_remove: write-only attribute");
  std::string msg;
  if (read) {  // as reading /sys/class/zram-control/hot_add: creates a store
    auto n = reg->hot_add(&msg);
    if (!n) return err(n.error(), msg);
    return ok(std::to_string(*n) + "\n");
  }
  unsigned n = 0;
  const std::string_view v = rest.substr(0, rest.find_last_not_of(' ') + 1);
  if (!StoreRegistry::parse_name("zram" + std::string(v), &n)) {
    return err(EINVAL, "hot_remove: expects a store number, e.g. 'hot_remove 1'");
  }
  if (auto r = reg->hot_remove(n, &msg); !r) return err(r.error(), msg);
  return ok("");
}

}  // namespace

std::string default_control_dir() noexcept {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): nothing in uzram writes its environment
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg && *xdg) return std::string(xdg) + "/uzram";
  return "./run/uzram";
}

std::string default_control_socket() noexcept { return default_control_dir() + "/control.sock"; }

std::string errno_name(std::error_code ec) noexcept {
  const int v =
      ec.category() == std::generic_category() ? ec.value() : ec.default_error_condition().value();
  for (const ErrnoName& e : kErrnoNames) {
    if (e.value == v) return e.name;
  }
  return "EIO";
}

std::error_code errno_from_name(std::string_view name) noexcept {
  for (const ErrnoName& e : kErrnoNames) {
    if (name == e.name) return {e.value, std::generic_category()};
  }
  return {EIO, std::generic_category()};
}

// ---- Targets ---------------------------------------------------------------------------

std::vector<std::shared_ptr<Store>> ControlTargets::stores() const noexcept {
  if (registry_) return registry_->stores();
  std::vector<std::shared_ptr<Store>> out;
  try {
    for (Store* s : fixed_) out.emplace_back(std::shared_ptr<void>(), s);  // non-owning
  } catch (...) {  // out of memory: what fitted
  }
  return out;
}

std::shared_ptr<Store> ControlTargets::find(std::string_view name) const noexcept {
  if (registry_) return registry_->find(name);
  for (Store* s : fixed_) {
    if (s->name() == name) return std::shared_ptr<Store>(std::shared_ptr<void>(), s);
  }
  return nullptr;
}

std::shared_ptr<Store> ControlTargets::default_store() const noexcept {
  if (registry_) return registry_->find(0u);
  if (fixed_.empty()) return nullptr;
  return std::shared_ptr<Store>(std::shared_ptr<void>(), fixed_.front());
}

// ---- Dispatch --------------------------------------------------------------------------

std::string ControlServer::respond(const ControlTargets& targets, std::string_view request,
                                   ControlSelection* selected) noexcept try {
  if (!request.empty() && request.back() == '\r') request.remove_suffix(1);
  if (request.size() >= kControlMaxLine) return err(E2BIG, "request line too long");
  for (char c : request) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return err(EINVAL, "request contains control characters");
  }
  std::string_view rest = request;
  const std::string_view cmd = next_word(&rest);
  if (cmd.empty()) return err(EINVAL, "empty request");
  if (cmd == "LIST") {
    std::string names;
    for (const auto& s : targets.stores()) names += s->name() + "\n";
    return ok(names);
  }
  if (cmd == "USE") {
    const std::string_view name = next_word(&rest);
    if (name == ControlTargets::kZramControl && targets.registry()) {
      *selected = ControlSelection{true, nullptr};
      return ok("");
    }
    std::shared_ptr<Store> s = targets.find(name);
    if (!s) return err(ENOENT, "USE: no store named '" + std::string(name.substr(0, 64)) + "'");
    *selected = ControlSelection{false, std::move(s)};
    return ok("");
  }
  if (cmd != "READ" && cmd != "WRITE" && cmd != "INFO") {
    return err(EINVAL, "unknown command '" + std::string(cmd.substr(0, 32)) +
                           "' (LIST, USE, READ, WRITE, INFO)");
  }
  if (selected->zram_control) {
    const std::string_view attr = next_word(&rest);
    return respond_zram_control(targets.registry(), cmd, attr, rest);
  }
  // A store USE'd is held; the default one is looked up each time (zram0 may come and go).
  std::shared_ptr<Store> held = selected->store ? selected->store : targets.default_store();
  if (!held) {
    return err(ENODEV, targets.registry() ? "no store zram0 here (USE another one)"
                                          : "no store is served here");
  }
  if (held->retired()) {
    return err(ENODEV, held->name() + " was removed (hot_remove); USE another store");
  }
  Store& s = *held;
  if (cmd == "INFO") return ok(info(s));
  const std::string_view attr = next_word(&rest);
  if (attr.empty()) return err(EINVAL, std::string(cmd) + ": attribute name missing");
  if (!attr_exists(attr))
    return err(ENOENT, std::string(attr.substr(0, 64)) + ": no such attribute");
  std::string msg;
  if (cmd == "READ") {
    if (!rest.empty()) return err(EINVAL, "READ: takes one attribute name");
    auto r = s.read_attr(attr, &msg);
    if (!r) return err(r.error(), msg.empty() ? r.error().message() : msg);
    return ok(*r);
  }
  auto r = s.write_attr(attr, rest, &msg);
  if (!r) return err(r.error(), msg.empty() ? r.error().message() : msg);
  return ok("");
} catch (...) {  // out of memory building a response
  return "ERR ENOMEM out of memory\n";
}

}  // namespace uzram
