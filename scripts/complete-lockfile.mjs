#!/usr/bin/env node
// The registry this project is developed against serves only some platforms'
// prebuilt optional packages (rollup, msgpackr-extract), so `npm install` leaves
// the others out of package-lock.json and `npm ci` then refuses the lock as out
// of sync. This adds each missing platform package as an optional entry with its
// os/cpu/libc, which npm ci skips on other platforms without fetching it.
// Run after any `npm install` that rewrites the lock.
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const cpus = { arm: 'arm', 'arm-eabi': 'arm', arm64: 'arm64', x64: 'x64', ia32: 'ia32', loong64: 'loong64', ppc64: 'ppc64', riscv64: 'riscv64', s390x: 's390x' };
const platform = /-(android|darwin|freebsd|linux|openbsd|openharmony|win32)-(arm-eabi|arm64|arm|x64|ia32|loong64|ppc64|riscv64|s390x)(?:-(gnueabihf|musleabihf|gnu|musl|msvc))?$/;

let added = 0;
for (const [key, entry] of Object.entries(lock.packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const target = `node_modules/${name}`;
    if (lock.packages[target] || lock.packages[`${key}/${target}`]) continue;
    const m = platform.exec(name);
    if (!m) throw new Error(`${name} (optional dependency of ${key || 'the project'}) is missing from the lock and is not a platform package; run npm install`);
    const [, os, cpu, abi] = m;
    const libc = abi === 'musl' || abi === 'musleabihf' ? ['musl'] : abi === 'gnu' || abi === 'gnueabihf' ? ['glibc'] : undefined;
    // Keys in the order npm writes them, so a later npm install leaves the file as it is.
    lock.packages[target] = {
      version,
      cpu: [cpus[cpu]],
      ...(entry.dev ? { dev: true } : {}),
      ...(libc && os === 'linux' ? { libc } : {}),
      license: 'MIT',
      optional: true,
      os: [os],
    };
    added += 1;
  }
}
lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0)));
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
process.stdout.write(`complete-lockfile: added ${added} platform package entries\n`);
