#!/usr/bin/env bash
# Installs the system packages the guest tests use, when missing:
# qemu-system-riscv32 (qemu-system-misc) for QEMU parity and the bare-metal
# RISC-V cross compiler to check the committed images; bpftrace, with which
# bench:migration times page faults from the touch (bench/fault-trace.ts,
# tested in test/bench). Idempotent and quick
# when everything is present. Unattended: never reads stdin, never prompts.
# Prints one line saying what it did (apt-get's own output goes to a log that
# is shown only when it fails).
# Exit status: 0 when everything is present afterwards, 1 otherwise (callers
# such as test/global-setup.ts then let the affected tests skip with a reason).
set -uo pipefail
exec </dev/null

tools=(qemu-system-riscv32 riscv64-unknown-elf-gcc bpftrace)
want=()
command -v qemu-system-riscv32 >/dev/null 2>&1 || want+=(qemu-system-misc)
command -v riscv64-unknown-elf-gcc >/dev/null 2>&1 || want+=(gcc-riscv64-unknown-elf)
command -v bpftrace >/dev/null 2>&1 || want+=(bpftrace)
if [ ${#want[@]} -eq 0 ]; then
  echo "install-test-deps: ${tools[*]} already installed; nothing to do"
  exit 0
fi

fail() {
  echo "install-test-deps: $1; the tests that need ${want[*]} will skip" >&2
  exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get not available, install ${want[*]} yourself"
sudo_cmd=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo_cmd=(sudo -n)
  else
    fail "not root and no passwordless sudo, install ${want[*]} yourself"
  fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
started=$SECONDS
export DEBIAN_FRONTEND=noninteractive
# Another apt run (unattended upgrades on a fresh machine) may hold the lock for a while.
apt_opts=(-q -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
echo "install-test-deps: installing ${want[*]} (apt-get update, then install)"
if ! "${sudo_cmd[@]}" apt-get "${apt_opts[@]}" update >"$log" 2>&1 \
  || ! "${sudo_cmd[@]}" apt-get "${apt_opts[@]}" install -y --no-install-recommends "${want[@]}" >>"$log" 2>&1; then
  tail -n 20 "$log" >&2
  fail "apt-get failed for ${want[*]} (last lines above)"
fi
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || fail "${want[*]} installed but $tool is still not on PATH"
done
echo "install-test-deps: installed ${want[*]} in $((SECONDS - started)) s"
