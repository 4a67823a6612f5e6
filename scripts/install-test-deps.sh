#!/usr/bin/env bash
# Installs the system packages the guest tests use, when missing:
# qemu-system-riscv32 (qemu-system-misc) for QEMU parity and the bare-metal
# RISC-V cross compiler to check the committed images. Idempotent and quick
# when everything is present. Unattended under CI=true or without a TTY.
# Exit status: 0 when everything is present afterwards, 1 otherwise (callers
# such as test/global-setup.ts then let the affected tests skip with a reason).
set -uo pipefail

want=()
command -v qemu-system-riscv32 >/dev/null 2>&1 || want+=(qemu-system-misc)
command -v riscv64-unknown-elf-gcc >/dev/null 2>&1 || want+=(gcc-riscv64-unknown-elf)
if [ ${#want[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: apt-get not available; install ${want[*]} yourself" >&2
  exit 1
fi
sudo_cmd=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo_cmd=(sudo -n)
  else
    echo "install-test-deps: not root and no passwordless sudo; install ${want[*]} yourself" >&2
    exit 1
  fi
fi

echo "install-test-deps: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo_cmd[@]}" apt-get update -q >&2 || ! "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${want[@]}" >&2; then
  echo "install-test-deps: apt-get failed for ${want[*]}" >&2
  exit 1
fi
command -v qemu-system-riscv32 >/dev/null 2>&1 && command -v riscv64-unknown-elf-gcc >/dev/null 2>&1
