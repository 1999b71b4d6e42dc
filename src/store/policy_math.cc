// store/policy_math.cc - the policy engine's arithmetic (policy_math.h).
#include "store/policy_math.h"

#include <algorithm>
#include <cmath>

#include "store/kv.h"

namespace uzram {

std::uint64_t policy_idle_age(std::uint64_t idle_min, std::uint64_t idle_max,
                              double util) noexcept {
  if (!(util >= 0)) util = 0;  // NaN too
  util = std::min(util, 1.0);
  if (idle_max <= idle_min) return idle_min;
  const double range = static_cast<double>(idle_max - idle_min);
  return idle_min + static_cast<std::uint64_t>(std::llround(range * std::exp(-5.0 * util)));
}

const char* skip_reason_name(SkipReason r) noexcept {
  switch (r) {
    case SkipReason::none: return "none";
    case SkipReason::below_min: return "below round_min";
    case SkipReason::day_budget: return "day budget spent";
    case SkipReason::backing_full: return "backing device full";
  }
  return "?";
}

Allowance round_allowance(double zram_util, std::uint64_t round_min, std::uint64_t round_max,
                          std::uint64_t backing_free, std::uint64_t day_left) noexcept {
  if (!(zram_util >= 0)) zram_util = 0;
  zram_util = std::min(zram_util, 1.0);
  const auto raw =
      static_cast<std::uint64_t>(std::floor(zram_util * static_cast<double>(round_max)));
  const std::uint64_t floor_pages = std::max<std::uint64_t>(round_min, 1);
  const std::uint64_t pages = std::min({raw, backing_free, day_left});
  if (pages >= floor_pages) return {pages, SkipReason::none};
  SkipReason why = SkipReason::below_min;
  if (day_left < floor_pages && day_left < raw) {
    why = SkipReason::day_budget;
  } else if (backing_free < floor_pages && backing_free < raw) {
    why = SkipReason::backing_full;
  }
  return {0, why};
}

// ---- DayWindow ------------------------------------------------------------------------------

void DayWindow::add(std::uint64_t now, std::uint64_t pages) noexcept {
  const std::uint64_t minute = now / 60;
  Slice& s = slices_[minute % kSlices];
  if (s.minute != minute) s = Slice{minute, 0};
  s.pages += pages;
}

std::uint64_t DayWindow::used(std::uint64_t now) const noexcept {
  const std::uint64_t minute = now / 60;
  std::uint64_t sum = 0;
  for (const Slice& s : slices_) {
    if (s.minute != ~std::uint64_t{0} && s.minute <= minute && s.minute + kSlices > minute) {
      sum += s.pages;
    }
  }
  return sum;
}

void DayWindow::clear() noexcept {
  for (Slice& s : slices_) s = Slice{};
}

std::uint64_t RoundClock::next_due(std::uint64_t interval, std::uint64_t backoff) const noexcept {
  if (!has_round) return anchor + interval;
  return std::max(last_start + interval, last_end + backoff);
}

// ---- AgeHistogram -----------------------------------------------------------------------------

unsigned AgeHistogram::bucket_of(std::uint32_t age) noexcept {
  if (age < 16) return age;
  const unsigned e = 31u - static_cast<unsigned>(__builtin_clz(age));  // 4..31
  const unsigned m = (age >> (e - 2)) & 3u;
  return 16 + (e - 4) * 4 + m;
}

std::uint32_t AgeHistogram::bucket_floor(unsigned bucket) noexcept {
  if (bucket < 16) return bucket;
  const unsigned e = 4 + (bucket - 16) / 4, m = (bucket - 16) % 4;
  return static_cast<std::uint32_t>((4u + m) << (e - 2));
}

AgeHistogram::Cut AgeHistogram::cutoff(std::uint64_t need_bytes) const noexcept {
  std::uint64_t bytes = 0, blocks = 0;
  for (unsigned b = kBuckets; b-- > 0;) {
    if (blocks_[b] == 0) continue;
    if (bytes + bytes_[b] >= need_bytes) {
      // Part of this bucket: as many of its blocks as its average size says, rounded up.
      const std::uint64_t avg = std::max<std::uint64_t>(bytes_[b] / blocks_[b], 1);
      const std::uint64_t want = (need_bytes - bytes + avg - 1) / avg;
      return {bucket_floor(b), blocks + std::clamp<std::uint64_t>(want, 1, blocks_[b])};
    }
    bytes += bytes_[b];
    blocks += blocks_[b];
  }
  return {0, blocks};  // not enough: every block
}

// ---- meminfo ---------------------------------------------------------------------------------

namespace {

// The value of "Key:   1234 kB", or false.
bool meminfo_field(std::string_view text, std::string_view key, std::uint64_t* kb) noexcept {
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t eol = std::min(text.find('\n', at), text.size());
    std::string_view line = text.substr(at, eol - at);
    at = eol + 1;
    if (line.size() <= key.size() || line.substr(0, key.size()) != key || line[key.size()] != ':') {
      continue;
    }
    line.remove_prefix(key.size() + 1);
    line = trim(line);
    if (line.size() >= 2 && line.substr(line.size() - 2) == "kB") line.remove_suffix(2);
    return parse_u64(trim(line), kb);
  }
  return false;
}

}  // namespace

double meminfo_utilisation(std::string_view meminfo) noexcept {
  std::uint64_t total = 0, avail = 0;
  if (!meminfo_field(meminfo, "MemTotal", &total) ||
      !meminfo_field(meminfo, "MemAvailable", &avail) || total == 0) {
    return -1;
  }
  return 1.0 - static_cast<double>(std::min(avail, total)) / static_cast<double>(total);
}

}  // namespace uzram
