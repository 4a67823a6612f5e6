// An empty array with the shape V8 gives an array once it has held objects.
// A literal `[]` starts out shaped for small integers and changes shape at
// its first object, so code optimized on arrays that had held objects (a
// rehearsal's) met a new `[]` as a shape it had never seen, threw the code
// away there (a wrong-map deopt) and compiled it again: --trace-deopt caught
// sendFrame at a fresh socket's write queue and pollOnce at a fresh poll
// loop's sources, the latter in a migration's first millisecond.
export function emptyObjectArray<T extends object>(): T[] {
  const array: (T | null)[] = [null];
  array.length = 0;
  return array as T[];
}
