// An empty array with the shape V8 gives an array once it has held objects.
// A literal `[]` starts out shaped for small integers and changes shape at
// its first object, so code optimized on arrays that had held objects (a
// rehearsal's) met each new `[]` as a shape it had never seen: a fresh
// socket's write queue, a fresh poll loop's tasks. It threw the code away
// there (a wrong-map deopt) and compiled it again, in a migration's first
// milliseconds, on the helper threads postcopy needs.
export function emptyObjectArray<T extends object>(): T[] {
  const array: (T | null)[] = [null];
  array.length = 0;
  return array as T[];
}
