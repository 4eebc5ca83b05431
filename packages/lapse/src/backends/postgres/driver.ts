import type PgModule from 'pg';
import { requirePeer } from '../../util/peer.js';

/** `pg`, the optional peer `lapse/postgres` runs on. */
export const pg = requirePeer<typeof PgModule>('pg', 'lapse/postgres');
