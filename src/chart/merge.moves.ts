import type { AccessContext } from '../access/context.ts';
import { type Binding, keyIdOf, open, seal } from '../crypto/envelope.ts';
import { CustosError } from '../errors.ts';
import type { FileType } from '../files/sniff.ts';
import * as store from './chart.store.ts';
import { type CallKeys, type Link, recordBodyAt } from './cipher.ts';
import { blobAt } from './files.service.ts';
import type { GateCore } from './gate-core.ts';
import type { RecordBody } from './model.ts';

/**
 * Moving a patient's clinical rows to another patient (src/chart/merge.service.ts): every version
 * of every record, the rows of the other pseudonym tables, and the documents' contents, each
 * re-sealed under the other patient's clinical key with the same binding and plaintext.
 */

type DocumentMeta = RecordBody<'document'>;

const conflict = (message: string) => new CustosError('CUSTOS_ERR_CONFLICT', message);

/** A row of a pseudonym table as `sealedRows` returns it. */
type Row = Record<string, unknown>;

/**
 * A table other than `records` whose rows carry a patient's pseudonym, with its columns sealed
 * under the patient's clinical key and where each is bound (the binding the owning service seals
 * with). A merge moves every row; undoing it moves back the rows that follow a parent row going
 * back (`follows`: an amendment request its record, a message its thread), or else the rows the
 * manifest lists.
 */
export interface PseudonymTable {
  readonly table: string;
  /** Other columns the bindings read. */
  readonly columns?: readonly string[];
  readonly sealed: Readonly<Record<string, (row: Row) => Binding>>;
  readonly follows?: { readonly column: string; readonly table: string };
}

const byId =
  (table: string, column: string) =>
  (row: Row): Binding => ({ table, column, row: String(row.id), version: 0 });

/**
 * Every pseudonym table a merge moves, parents before the tables that follow them. A table of the
 * schema with a pseudonym column that is not here stops every merge (`knownPseudonymTables`):
 * clinical rows are never left behind. Tables not in the schema (yet) are skipped.
 */
export const PSEUDONYM_TABLES: readonly PseudonymTable[] = [
  {
    table: 'amendment_requests',
    sealed: {
      request: byId('amendment_requests', 'request'),
      decision: byId('amendment_requests', 'decision'),
    },
    follows: { column: 'record_id', table: 'records' },
  },
  { table: 'appointments', sealed: { reason: byId('appointments', 'reason') } },
  { table: 'waiting_list_entries', sealed: { note: byId('waiting_list_entries', 'note') } },
  { table: 'disclosures', sealed: { description: byId('disclosures', 'description') } },
  { table: 'message_threads', sealed: { subject: byId('message_threads', 'subject') } },
  {
    table: 'messages',
    columns: ['thread_id', 'seq'],
    sealed: {
      body: (row) => ({
        table: 'messages',
        column: 'body',
        row: `${String(row.thread_id)}/${String(row.id)}`,
        version: Number(row.seq),
      }),
    },
    follows: { column: 'thread_id', table: 'message_threads' },
  },
];
const SPECS = new Map(PSEUDONYM_TABLES.map((t) => [t.table, t]));

/** The pseudonym tables of the schema other than `records`, in order; an unknown one stops the merge. */
export async function knownPseudonymTables(tx: store.Tx): Promise<PseudonymTable[]> {
  const present = new Set((await store.pseudonymTables(tx)).filter((t) => t !== 'records'));
  const unknown = [...present].filter((t) => !SPECS.has(t));
  if (unknown.length > 0) {
    // A schema newer than this merge code: merging would leave clinical rows behind.
    throw new CustosError(
      'CUSTOS_ERR_CONFIG',
      `merging does not know how to move rows of ${unknown.join(', ')}; see PSEUDONYM_TABLES in src/chart/merge.moves.ts`,
    );
  }
  return PSEUDONYM_TABLES.filter((t) => present.has(t.table));
}

/** Re-seals a value sealed under `from`'s clinical key under `to`'s, same binding and plaintext. */
function reseal(keys: CallKeys, from: Key, to: Key, at: Binding, blob: Buffer): Buffer {
  if (keyIdOf(blob, at) !== from.keyId) {
    throw new CustosError(
      'CUSTOS_ERR_INTEGRITY',
      `ciphertext names a data key that is not the patient's (${at.table}, row ${at.row})`,
    );
  }
  const plain = open(keys.key(from.keyId, from.wrapped), at, blob);
  try {
    return seal(keys.key(to.keyId, to.wrapped), to.keyId, at, plain);
  } finally {
    plain.fill(0);
  }
}

interface Key {
  readonly keyId: string;
  readonly wrapped: Buffer;
}

async function keyOf(g: GateCore, db: store.Tx, link: Link): Promise<Key> {
  return { keyId: link.clinicalKeyId, wrapped: await g.wrappedKey(db, link.clinicalKeyId) };
}

/**
 * Moves records (all of `from`'s, or the ids given) to `to`: every version re-sealed under `to`'s
 * key, documents pointing at their re-encrypted content, then the pseudonym.
 */
export async function moveRecords(
  g: GateCore,
  tx: store.Tx,
  ctx: AccessContext,
  keys: CallKeys,
  blobs: BlobMoves,
  from: Link,
  to: Link,
  only: ReadonlySet<string> | null,
): Promise<{ records: { id: string; version: number }[]; files: number }> {
  const all = await store.loadRecords(tx, {
    practiceId: ctx.practiceId,
    pseudonym: from.pseudonym,
    allVersions: true,
  });
  const rows = only ? all.filter((r) => only.has(r.id)) : all;
  if (rows.length === 0) {
    return { records: [], files: 0 };
  }
  const [kf, kt] = [await keyOf(g, tx, from), await keyOf(g, tx, to)];
  const current = new Map<string, number>();
  const out: { recordId: string; version: number; body: Buffer }[] = [];
  let files = 0;
  for (const r of rows) {
    current.set(r.id, Math.max(current.get(r.id) ?? 0, r.version));
    const at = recordBodyAt(r.id, r.version);
    if (r.kind !== 'document') {
      out.push({ recordId: r.id, version: r.version, body: reseal(keys, kf, kt, at, r.body) });
      continue;
    }
    // A document's body names its content: point it at the re-encrypted blob.
    if (r.keyId !== kf.keyId) {
      throw new CustosError('CUSTOS_ERR_INTEGRITY', `record ${r.id} is not sealed with the patient's key`);
    }
    const body = keys.openJson<DocumentMeta>(r.keyId, r.wrappedKey, at, r.body);
    if (body.blobId !== undefined) {
      const moved = blobs.use(body.blobId);
      files += moved.first ? 1 : 0;
      body.blobId = moved.to;
    }
    out.push({
      recordId: r.id,
      version: r.version,
      body: seal(keys.key(kt.keyId, kt.wrapped), kt.keyId, at, Buffer.from(JSON.stringify(body), 'utf8')),
    });
  }
  await store.replaceVersionBodies(tx, ctx.practiceId, out);
  const ids = [...current.keys()];
  const n = await store.moveRecordHeads(tx, {
    practiceId: ctx.practiceId,
    ids,
    from: from.pseudonym,
    to: to.pseudonym,
  });
  if (n !== ids.length) {
    throw conflict('records changed during the merge; try again');
  }
  return { records: [...current].map(([id, version]) => ({ id, version })), files };
}

/** Moves rows of one pseudonym table (all of `from`'s, or some) to `to`, re-sealing their sealed columns. */
export async function moveRows(
  g: GateCore,
  tx: store.Tx,
  ctx: AccessContext,
  keys: CallKeys,
  spec: PseudonymTable,
  from: Link,
  to: Link,
  which: { ids?: readonly string[]; parent?: { column: string; ids: readonly string[] } },
): Promise<string[]> {
  const sealedColumns = Object.keys(spec.sealed);
  const rows = await store.sealedRows(tx, {
    practiceId: ctx.practiceId,
    table: spec.table,
    columns: [...(spec.columns ?? []), ...sealedColumns],
    pseudonym: from.pseudonym,
    ...which,
  });
  if (rows.length === 0) {
    return [];
  }
  const [kf, kt] = [await keyOf(g, tx, from), await keyOf(g, tx, to)];
  const ids: string[] = [];
  for (const row of rows) {
    const id = String(row.id);
    const sealed: Record<string, Buffer | null> = {};
    for (const [column, at] of Object.entries(spec.sealed)) {
      const v = (row[column] as Buffer | null | undefined) ?? null;
      sealed[column] = v === null ? null : reseal(keys, kf, kt, at(row), v);
    }
    const ok = await store.moveSealedRow(tx, {
      practiceId: ctx.practiceId,
      table: spec.table,
      id,
      from: from.pseudonym,
      to: to.pseudonym,
      sealed,
    });
    if (!ok) {
      throw conflict('the patients changed during the merge; try again');
    }
    ids.push(id);
  }
  return ids;
}

/**
 * Document contents re-encrypted for a move: `prepare` streams each blob (integrity checked to
 * the end) from the old key into a new blob under the new key, before the transaction; the
 * transaction `use`s them; after it commits the old blobs are removed (and any new one the
 * transaction did not use), and if it fails `undo` removes the new ones. Content is never whole
 * in memory, and the old blob stays until the new one is committed.
 */
export class BlobMoves {
  readonly #g: GateCore;
  readonly #made = new Map<string, string>();
  readonly #used = new Set<string>();

  constructor(g: GateCore) {
    this.#g = g;
  }

  async prepare(db: store.Tx, keys: CallKeys, rows: readonly store.RecordRow[], from: Link, to: Link) {
    const docs = new Map<string, { recordId: string; size: number; sha256: string; contentType: string }>();
    for (const r of rows) {
      const body = keys.openJson<DocumentMeta>(r.keyId, r.wrappedKey, recordBodyAt(r.id, r.version), r.body);
      if (body.blobId && body.sha256 && body.size !== undefined) {
        docs.set(body.blobId, {
          recordId: r.id,
          size: body.size,
          sha256: body.sha256,
          contentType: body.contentType,
        });
      }
    }
    if (docs.size === 0) {
      return;
    }
    const store = this.#g.blobs;
    if (!store) {
      throw new CustosError('CUSTOS_ERR_CONFIG', 'no file store is configured');
    }
    const [kf, kt] = [await keyOf(this.#g, db, from), await keyOf(this.#g, db, to)];
    try {
      for (const [blobId, d] of docs) {
        const binding = blobAt(d.recordId);
        const content = await store.read(blobId, {
          key: keys.key(kf.keyId, kf.wrapped),
          binding,
          expect: { size: d.size, sha256: d.sha256 },
        });
        const stored = await store.write(content, {
          key: keys.key(kt.keyId, kt.wrapped),
          keyId: kt.keyId,
          binding,
          // The content was accepted once; the same bytes, whatever the limits are today.
          limit: Math.max(d.size, 1),
          allowed: [d.contentType as FileType],
        });
        this.#made.set(blobId, stored.blobId);
        if (stored.size !== d.size || stored.sha256 !== d.sha256) {
          throw new CustosError('CUSTOS_ERR_INTEGRITY', `document ${d.recordId} changed while re-encrypted`);
        }
      }
    } catch (e) {
      await this.undo();
      throw e;
    }
  }

  /** The new blob for an old one; a blob `prepare` did not see means the chart changed meanwhile. */
  use(blobId: string): { to: string; first: boolean } {
    const to = this.#made.get(blobId);
    if (!to) {
      throw conflict('a document was added or changed during the merge; try again');
    }
    const first = !this.#used.has(blobId);
    this.#used.add(blobId);
    return { to, first };
  }

  async undo(): Promise<void> {
    await this.#remove([...this.#made.values()]);
    this.#made.clear();
  }

  /** After the commit: the old contents of the moved documents, and any new blob left unused. */
  async committed(): Promise<void> {
    const stale = [...this.#made].map(([from, to]) => (this.#used.has(from) ? from : to));
    await this.#remove(stale);
  }

  async #remove(ids: readonly string[]): Promise<void> {
    const store = this.#g.blobs;
    for (const id of ids) {
      // Best effort: a blob that cannot be removed now is ciphertext nobody points to, bound to
      // its record; it takes space, not privacy (`custos` may sweep orphans later).
      await store?.remove(id).catch(() => false);
    }
  }
}
