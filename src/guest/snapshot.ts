// A snapshot file: a stopped machine's state plus its RAM, so a run can be
// continued in another process (`postcopy run --save` / `--restore`). RAM is
// stored sparsely: only pages that are not all zero.
//
//   +--------+-------------------------------------------------------+
//   | 0      | u32 magic 0x4e534350 ("PCSN")                         |
//   | 4      | u32 format version (1)                                |
//   | 8      | 32 bytes: SHA-256 of the guest image                  |
//   | 40     | u32 length S of the encoded MachineState (state.ts)   |
//   | 44     | S bytes of encoded MachineState                       |
//   | 44+S   | u32 count P of stored pages                           |
//   |        | P records: u32 page index, 4096 bytes of page         |
//   +--------+-------------------------------------------------------+
import fs from 'node:fs';
import { GuestStateError } from './errors.ts';
import { PAGE_SIZE } from './memory-map.ts';
import { decodeMachineState, encodeMachineState, MAX_STATE_BYTES, type MachineState } from './state.ts';

const MAGIC = 0x4e534350;
const VERSION = 1;

export interface Snapshot {
  imageHash: string;
  state: MachineState;
  /** All of RAM, state.ramSize bytes. */
  ram: Uint8Array;
}

function isZero(page: Uint8Array): boolean {
  const words = new Uint32Array(page.buffer, page.byteOffset, page.length / 4);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
  return true;
}

export function writeSnapshot(path: string, imageHash: string, state: MachineState, ram: Uint8Array): void {
  const fd = fs.openSync(path, 'w');
  try {
    const encoded = encodeMachineState(state);
    const header = Buffer.alloc(44);
    header.writeUInt32LE(MAGIC, 0);
    header.writeUInt32LE(VERSION, 4);
    Buffer.from(imageHash, 'hex').copy(header, 8);
    header.writeUInt32LE(encoded.length, 40);
    fs.writeSync(fd, header);
    fs.writeSync(fd, encoded);
    const pages: number[] = [];
    for (let p = 0; p < state.ramSize / PAGE_SIZE; p++) if (!isZero(ram.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE))) pages.push(p);
    const count = Buffer.alloc(4);
    count.writeUInt32LE(pages.length, 0);
    fs.writeSync(fd, count);
    const index = Buffer.alloc(4);
    for (const p of pages) {
      index.writeUInt32LE(p, 0);
      fs.writeSync(fd, index);
      fs.writeSync(fd, ram, p * PAGE_SIZE, PAGE_SIZE);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads and validates a snapshot; RAM pages are copied into `ramFor(state)` (a view of the new machine's RAM). */
export function readSnapshot(path: string, ramFor: (state: MachineState) => Uint8Array): Omit<Snapshot, 'ram'> {
  const bytes = fs.readFileSync(path);
  const fail = (field: string, why: string): never => {
    throw new GuestStateError(`snapshot.${field}`, `${why} (file ${path})`);
  };
  if (bytes.length < 48) fail('header', 'file is too short to be a snapshot');
  if (bytes.readUInt32LE(0) !== MAGIC) fail('magic', 'is not "PCSN": not a postcopy snapshot');
  if (bytes.readUInt32LE(4) !== VERSION) fail('version', `is ${bytes.readUInt32LE(4)}, this build reads ${VERSION}`);
  const imageHash = bytes.subarray(8, 40).toString('hex');
  const stateLength = bytes.readUInt32LE(40);
  if (stateLength > MAX_STATE_BYTES + 12 || 44 + stateLength + 4 > bytes.length) fail('state', `length ${stateLength} does not fit the file`);
  const state = decodeMachineState(bytes.subarray(44, 44 + stateLength));
  let at = 44 + stateLength;
  const count = bytes.readUInt32LE(at);
  at += 4;
  const pages = state.ramSize / PAGE_SIZE;
  if (count > pages || at + count * (4 + PAGE_SIZE) !== bytes.length) fail('pages', `count ${count} does not match the file size`);
  const ram = ramFor(state);
  for (let i = 0; i < count; i++) {
    const page = bytes.readUInt32LE(at);
    if (page >= pages) fail('pages', `page index ${page} is outside ${pages} pages of RAM`);
    ram.set(bytes.subarray(at + 4, at + 4 + PAGE_SIZE), page * PAGE_SIZE);
    at += 4 + PAGE_SIZE;
  }
  return { imageHash, state };
}
