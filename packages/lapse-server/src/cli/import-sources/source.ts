/** A session as a peer express-session store holds it. */
export interface PeerSession {
  id: string;
  /** The stored JSON text of the session (cookie and app keys). */
  text: string;
  /** When the peer store would drop it (its TTL or expire column), or null when it keeps it forever. */
  expiresAt: number | null;
}

/**
 * A peer store read a page at a time. The cursor is opaque text that a later run can resume
 * from (a Redis SCAN cursor, the last id of an ordered table); null means "from the start".
 */
export interface PeerSource {
  /** What the checkpoint is tied to: the kind and location of the source. */
  readonly name: string;
  /** How many sessions there are, when the peer can tell cheaply. */
  total(): Promise<number | undefined>;
  /** The next page after `cursor`; `next` is null when this was the last one. */
  page(cursor: string | null): Promise<{ sessions: PeerSession[]; next: string | null }>;
  close(): Promise<void>;
}
