#!/usr/bin/env bash
# Installs the Debian packages uzram needs that are missing. Usage: install-deps.sh GROUP...
#   core   build and test (compilers, cmake, GoogleTest, Google Benchmark, spin, nlohmann-json,
#          libmicrohttpd for --metrics; curl and python3-prometheus-client scrape it in tests;
#          libsystemd for sd_notify, systemd for systemd-analyze verify of the unit;
#          clang-format and clang-tidy for the lint suite)
#   bench  benchmarks and plots (gnuplot, jemalloc, mimalloc)
#   swap   make test-swap: a real kernel swapping onto uzram under qemu (software emulation)
set -euo pipefail
declare -A groups=(
  [core]="cmake ninja-build clang libclang-rt-dev g++ make pkg-config libgtest-dev libgmock-dev libbenchmark-dev spin liblz4-dev libzstd-dev zlib1g-dev liblzo2-dev libnbd-dev libfmt-dev libcli11-dev nlohmann-json3-dev libnbd-bin python3-libnbd nbdkit qemu-utils fio fuse3 e2fsprogs libgnutls28-dev openssl python3 libmicrohttpd-dev curl python3-prometheus-client clang-format clang-tidy libsystemd-dev systemd"
  [bench]="gnuplot-nox libjemalloc-dev libmimalloc-dev liblz4-dev"
  [swap]="qemu-system-x86 linux-image-amd64 busybox-static nbd-client cpio file xz-utils util-linux binutils"
)
want=()
for g in "${@:-core}"; do
  [[ -n "${groups[$g]:-}" ]] || { echo "install-deps: unknown group '$g'" >&2; exit 2; }
  read -r -a pkgs <<<"${groups[$g]}"
  want+=("${pkgs[@]}")
done
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
