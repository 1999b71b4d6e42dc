// cli/ctl.cc - `uzram ctl [--control SOCKET] [--store NAME] ATTR [VALUE...]`: reads an
// attribute of a running store (printing exactly what `cat /sys/block/zram0/ATTR` prints) or
// writes one (printing nothing, as `echo VALUE > .../ATTR`). A write-only attribute with no
// VALUE is written with none (`uzram ctl compact`: the store takes it as 1). hot_add and
// hot_remove address the server's zram-control: `uzram ctl hot_add` prints the new store's
// number, `uzram ctl hot_remove N` removes zramN.
#include <cerrno>

#include "cli/cli.h"
#include "control/control.h"
#include "uzram/store.h"

namespace uzram::cli {

int run_ctl(const CtlOptions& o, const Io& io) noexcept {
  const std::string path = o.control.empty() ? default_control_socket() : o.control;
  for (const std::string& v : o.value) {
    if (v.find('\n') != std::string::npos)
      return usage_error(io, "ctl: VALUE must not contain a newline");
  }
  if (o.attr.find_first_of(" \n") != std::string::npos)
    return usage_error(io, "ctl: bad attribute name '" + o.attr + "'");
  std::string msg;
  auto client = ControlClient::connect(path, &msg);
  if (!client) {
    report(io, "ctl", client.error(), msg);
    return kExitUnreachable;
  }
  // hot_add and hot_remove are zram-control's (/sys/class/zram-control), not a store's.
  const bool zram_control = o.attr == "hot_add" || o.attr == "hot_remove";
  if (zram_control && !o.device.empty() && o.device != ControlTargets::kZramControl) {
    return usage_error(
        io, "ctl: " + o.attr + " belongs to zram-control, not to a store (" + o.device + ")");
  }
  const std::string target = zram_control ? std::string(ControlTargets::kZramControl) : o.device;
  if (!target.empty()) {
    if (auto r = client->use(target, &msg); !r) {
      report(io, "ctl", r.error(), msg);
      return kExitFailed;
    }
  }
  // A write-only attribute given no value is written with an empty value: the store says
  // what that means (a trigger such as compact: 1; others: their grammar's error).
  if (o.value.empty() && (Store::attr_readable(o.attr) || !Store::attr_writable(o.attr))) {
    auto r = client->read_attr(o.attr, &msg);
    if (!r) {
      report(io, "ctl", r.error(), msg);
      return kExitFailed;
    }
    std::fwrite(r->data(), 1, r->size(), io.out);
    return kExitOk;
  }
  std::string value;
  for (const std::string& v : o.value) value += (value.empty() ? "" : " ") + v;
  if (auto r = client->write_attr(o.attr, value, &msg); !r) {
    report(io, "ctl", r.error(), msg);
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace uzram::cli
