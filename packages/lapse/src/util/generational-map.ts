import { errors } from '../core/errors.js';

/**
 * The entry count a cache option asks for (`fallback` when unset; 0 turns the cache off), or
 * LAPSE_INVALID_OPTION naming `name` for anything but a whole number >= 0.
 */
export function cacheEntries(value: unknown, fallback: number, name: string): number {
  const n = value ?? fallback;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
    throw errors.optionMustBe(name, 'an integer >= 0', n);
  }
  return n;
}

/**
 * A bounded map that approximates LRU in O(1) per call with no iteration: two generations
 * instead of one ordered Map. When the young one fills up it becomes the old one and the
 * previous old one is dropped whole; a key used again in the old generation moves back to
 * the young one. Holds between max/2 and max entries. (Evicting from the front of one Map key
 * by key leaves deleted slots that every keys().next() walks over.)
 */
export class GenerationalMap<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  private readonly half: number;

  constructor(max: number) {
    this.half = Math.max(1, Math.ceil(max / 2));
  }

  has(key: K): boolean {
    return this.young.has(key) || this.old.has(key);
  }

  get(key: K): V | undefined {
    const v = this.young.get(key);
    if (v !== undefined) return v;
    const aging = this.old.get(key);
    if (aging !== undefined) {
      // Used again: back into the young generation, so it survives the next turnover.
      this.old.delete(key);
      this.put(key, aging);
    }
    return aging;
  }

  set(key: K, value: V): void {
    this.old.delete(key);
    this.put(key, value);
  }

  delete(key: K): void {
    this.young.delete(key);
    this.old.delete(key);
  }

  clear(): void {
    if (this.young.size > 0) this.young = new Map();
    if (this.old.size > 0) this.old = new Map();
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  private put(key: K, value: V): void {
    this.young.set(key, value);
    if (this.young.size >= this.half) {
      this.old = this.young;
      this.young = new Map();
    }
  }
}
