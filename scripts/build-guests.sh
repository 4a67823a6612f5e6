#!/usr/bin/env bash
# Builds the guest programs (src/guest/programs/*.c) into committed ELF images
# (src/guest/programs/images/NAME.elf). Installs Debian's bare-metal RISC-V
# cross compiler when missing. The build is reproducible: same sources and
# compiler give byte-identical images (no build ids, paths mapped, no debug info).
#   scripts/build-guests.sh [OUT_DIR]   (OUT_DIR defaults to the images folder)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/src/guest/programs"
out="${1:-$src/images}"
cc=riscv64-unknown-elf-gcc

if ! command -v "$cc" >/dev/null 2>&1; then
  echo "build-guests: $cc missing, installing gcc-riscv64-unknown-elf" >&2
  sudo_cmd=""
  if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q gcc-riscv64-unknown-elf >&2
fi

flags=(-march=rv32im_zicsr -mabi=ilp32 -O2 -nostdlib -ffreestanding -fno-builtin
  -fno-tree-loop-distribute-patterns -fno-pic -fno-asynchronous-unwind-tables
  -Wall -Wextra -Werror -ffile-prefix-map="$src"=. -s -Wl,--build-id=none
  -Wl,-T,"$src/common/link.ld" -Wl,--no-warn-rwx-segments -I"$src/common")

mkdir -p "$out"
cd "$src"
for program in memwork life diskio selftest; do
  "$cc" "${flags[@]}" -o "$out/$program.elf" common/crt0.S common/lib.c "$program.c" -lgcc
done
echo "build-guests: built $(ls "$out"/*.elf | wc -l) images in $out" >&2
