import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { emptyObjectArray } from '../../src/object-array.ts';

// V8's own answer to "do these two arrays have one shape": compiled after the flag is set.
setFlagsFromString('--allow-natives-syntax');
const sameShape = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: unknown, b: unknown) => boolean;

describe('emptyObjectArray', () => {
  it('starts with the shape a queue of objects has once used, which a literal [] does not', () => {
    const used: object[] = [];
    used.push({});
    used.shift();
    expect(sameShape([], used)).toBe(false);
    const fresh = emptyObjectArray<object>();
    expect(fresh).toEqual([]);
    expect(sameShape(fresh, used)).toBe(true);
    fresh.push({ a: 1 });
    expect(fresh).toEqual([{ a: 1 }]);
    expect(sameShape(fresh, used)).toBe(true);
  });
});
