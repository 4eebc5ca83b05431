import { GenerationalMap } from '../util/generational-map.js';
import { deepFreeze, parseData, type SessionRecord } from './session.js';

/**
 * A record that keeps its own parsed data (the memory backend's entries, and the records the
 * SQLite backend reads from its file when it has a read cache): `parsedData` is null until the
 * store parses it, and a backend that writes the record's data sets it back to null (SQLite
 * never writes a record it handed out: it builds a new one). Records where it is undefined or
 * absent (every other backend's, and SQLite's write paths') use the store's cache.
 */
export interface ParsedSlot {
  parsedData?: unknown;
}

/**
 * One read miss in this many is kept (as the SQLite read cache admits its misses): a session
 * read again and again gets in after a few reads, while a stream of sessions each read once
 * (uniform traffic over many more sessions than fit) does not churn the cache. Keeping every
 * miss cost a random validate on SQLite an entry object and a map insert that outlive a few
 * young-generation GCs and are promoted, for nothing.
 */
const ADMIT_EVERY = 8;

interface Parsed {
  version: number;
  text: string;
  value: unknown;
}

/**
 * The parsed, frozen data of recently read sessions, keyed by id and checked against the
 * record's version and text, so a hot session is parsed once, not on every validate, whatever
 * the backend. The store owns it: a backend only implements the Backend contract.
 */
export class ParsedDataCache {
  private readonly entries: GenerationalMap<string, Parsed> | undefined;
  private misses = 0;

  constructor(max: number) {
    if (max > 0) this.entries = new GenerationalMap(max);
  }

  /**
   * The data of `rec`, parsed and deeply frozen; once kept (see ADMIT_EVERY), the same object
   * while id, version and text are unchanged.
   */
  of(rec: SessionRecord): unknown {
    const slot = (rec as ParsedSlot).parsedData;
    if (slot !== undefined) {
      if (slot !== null) return slot;
      // A record with a slot of its own: the parsed data lives and dies with it, no lookup.
      const value = parseData(rec);
      (rec as ParsedSlot).parsedData = value;
      return value;
    }
    const entries = this.entries;
    if (entries === undefined) return parseData(rec);
    const hit = entries.get(rec.id);
    if (hit !== undefined && hit.version === rec.version && hit.text === rec.data) return hit.value;
    const value = parseData(rec);
    // A stale entry is replaced at once; a new id is kept one miss in ADMIT_EVERY (see there).
    if (hit !== undefined || ++this.misses % ADMIT_EVERY === 0) entries.set(rec.id, { version: rec.version, text: rec.data, value });
    return value;
  }

  /**
   * The data of a record just written (a new version): parsed and kept, without looking up the
   * old one. A record that kept its own parse (its backend wrote the same text again, and clears
   * the slot whenever the text changes) is not parsed again.
   */
  put(rec: SessionRecord): unknown {
    const slot = (rec as ParsedSlot).parsedData;
    if (slot !== undefined && slot !== null) return slot;
    return this.keep(rec, parseData(rec));
  }

  /** The data of a record just written, when the caller holds it parsed already (JSON.parse of rec.data): frozen and kept. */
  putParsed(rec: SessionRecord, parsed: unknown): unknown {
    return this.keep(rec, deepFreeze(parsed));
  }

  /** Keeps `value` as the parsed data of `rec`: in the record's own slot if it has one, else in the cache. */
  private keep(rec: SessionRecord, value: unknown): unknown {
    if ((rec as ParsedSlot).parsedData !== undefined) (rec as ParsedSlot).parsedData = value;
    else this.entries?.set(rec.id, { version: rec.version, text: rec.data, value });
    return value;
  }

  forget(id: string): void {
    this.entries?.delete(id);
  }

  clear(): void {
    this.entries?.clear();
  }
}
