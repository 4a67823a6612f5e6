// The shared migration token: generated once, handed to both sides out of
// band (CLI flag or environment), compared in constant time in every handshake.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

export function generateSessionId(): string {
  return randomBytes(12).toString('base64url');
}

/** Constant-time equality; hashing first makes the compare independent of the lengths too. */
export function tokensEqual(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}
