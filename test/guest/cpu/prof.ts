import { machine } from '/work/main/test/guest/cpu/machine.ts';
import { readFileSync } from 'node:fs';
const src = readFileSync('/work/main/bench/mips.ts', 'utf8').split('const PROGRAM = `')[1].split('`;')[0];
const m = machine(src, { engine: 'interpreter', ramSize: 1 << 20 });
m.hart.run(2e6);
const t0 = performance.now(); m.hart.run(2e7); const dt = performance.now() - t0;
console.log((2e7 / dt / 1000).toFixed(1), 'MIPS');
