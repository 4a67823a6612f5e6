// The head of one whole binary WebSocket frame (RFC 6455 §5.2), for a
// message sent as pieces that are never joined in memory: the head, then
// the pieces, written together. A client's frames carry a mask of zeros, as
// connect.ts has ws make them, so the payload goes out as it is.
const OPCODE_BINARY = 0x2;
const FIN = 0x80;
const MASKED = 0x80;

export function binaryFrameHead(payloadBytes: number, masked: boolean): Buffer {
  const extended = payloadBytes > 0xffff ? 8 : payloadBytes > 125 ? 2 : 0;
  const head = Buffer.alloc(2 + extended + (masked ? 4 : 0));
  head[0] = FIN | OPCODE_BINARY;
  if (extended === 8) {
    head[1] = 127;
    head.writeUIntBE(payloadBytes, 4, 6);
  } else if (extended === 2) {
    head[1] = 126;
    head.writeUInt16BE(payloadBytes, 2);
  } else {
    head[1] = payloadBytes;
  }
  if (masked) head[1] |= MASKED;
  return head;
}
