// Field readers for decoded msgpack maps: each returns the typed value or
// throws ProtocolMalformedError naming the message, the field and what was wrong.
import { ProtocolMalformedError } from './errors.ts';

export type Fields = Record<string, unknown>;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Uint8Array) return 'binary';
  return typeof value === 'object' ? 'a map' : `${typeof value} ${String(value).slice(0, 40)}`;
}

export class FieldReader {
  constructor(
    private readonly fields: Fields,
    private readonly what: string,
  ) {}

  private raw(name: string): unknown {
    if (!Object.hasOwn(this.fields, name)) {
      throw new ProtocolMalformedError(`'${this.what}' is missing its '${name}' field`);
    }
    return this.fields[name];
  }

  private wrong(name: string, expected: string, value: unknown): ProtocolMalformedError {
    return new ProtocolMalformedError(`'${this.what}' field '${name}' must be ${expected}, got ${describe(value)}`);
  }

  /** Rejects fields this version does not define, so typos and mixed versions show up at once. */
  only(names: readonly string[]): void {
    for (const key of Object.keys(this.fields)) {
      if (key !== 'v' && key !== 'type' && !names.includes(key)) {
        throw new ProtocolMalformedError(`'${this.what}' has an unknown field '${key.slice(0, 40)}'; fields are ${names.join(', ') || '(none)'}`);
      }
    }
  }

  uint(name: string, max = Number.MAX_SAFE_INTEGER, min = 0): number {
    const v = this.raw(name);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      throw this.wrong(name, `an integer in ${min}..${max}`, v);
    }
    return v;
  }

  string(name: string, maxLength: number, pattern?: RegExp): string {
    const v = this.raw(name);
    if (typeof v !== 'string' || v.length > maxLength || (pattern !== undefined && !pattern.test(v))) {
      throw this.wrong(name, `a string of at most ${maxLength} characters${pattern ? ` matching ${pattern}` : ''}`, v);
    }
    return v;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[]): T {
    const v = this.raw(name);
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      throw this.wrong(name, `one of ${allowed.join(', ')}`, v);
    }
    return v as T;
  }

  boolean(name: string): boolean {
    const v = this.raw(name);
    if (typeof v !== 'boolean') throw this.wrong(name, 'true or false', v);
    return v;
  }

  binary(name: string, length: number): Uint8Array {
    const v = this.raw(name);
    if (!(v instanceof Uint8Array) || v.length !== length) throw this.wrong(name, `binary of exactly ${length} bytes`, v);
    return v;
  }

  /** An array of integers in 0..max, at most maxLength long. */
  uintArray(name: string, maxLength: number, max: number): number[] {
    const v = this.raw(name);
    if (!Array.isArray(v) || v.length > maxLength) throw this.wrong(name, `an array of at most ${maxLength} integers`, v);
    for (let i = 0; i < v.length; i++) {
      const n: unknown = v[i];
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || n > max) {
        throw new ProtocolMalformedError(`'${this.what}' field '${name}'[${i}] must be an integer in 0..${max}, got ${describe(n)}`);
      }
    }
    return v as number[];
  }

  map(name: string): Fields {
    const v = this.raw(name);
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) throw this.wrong(name, 'a map', v);
    return v as Fields;
  }

  present(name: string): unknown {
    return this.raw(name);
  }
}
