import { randomUUID } from 'node:crypto';
import type { AccessContext } from '../access/context.ts';
import { CLINICAL_SECTIONS, SECTIONS } from '../access/grants.ts';
import type { Consent, PatientFacts } from '../access/policy.ts';
import type { Binding } from '../crypto/envelope.ts';
import { CustosError, validationError } from '../errors.ts';
import { isUuid } from '../ids.ts';
import * as store from './chart.store.ts';
import type { Link } from './cipher.ts';
import { Denied, type GateCore, type Target } from './gate-core.ts';
import { BlobMoves, knownPseudonymTables, moveRecords, moveRows } from './merge.moves.ts';

/**
 * Merging duplicate patients, audited and reversible (issue 6 item 1; docs/merge.md).
 *
 * A clinical row belongs to a patient through its pseudonym and is sealed with that patient's
 * clinical key, so merging source into target re-seals every version of every record of the
 * source (and every row of the other pseudonym tables) under the target's key and gives it the
 * target's pseudonym, in one transaction with the audit entry. Document contents are re-encrypted
 * into new blobs before that transaction (streamed, `GateCore.prepared`); the old blobs are
 * removed once it has committed. The source's current care-team members join the target's team;
 * the source becomes inactive with `merged_into` pointing at the target. What moved is kept in a
 * manifest sealed under the link key, and undoing the merge moves exactly that back (records the
 * target got after the merge stay there, except amendments of records that go back).
 *
 * Who may merge: someone who may manage both care teams and write every section of both patients
 * (identity, appointments, messages, every clinical section at every sensitivity), on their own
 * reach (never through break-the-glass). With the grants of src/access/grants.ts that is a
 * clinician on both care teams; front desk (no clinical sections), nurses (no care-team management, no restricted or
 * psychotherapy records) and the privacy officer (no chart content) are refused. The decision
 * does not depend on what the source holds, so a refusal says nothing about its records.
 */

const SENSITIVITIES = ['normal', 'restricted', 'psychotherapy'] as const;
const CLINICAL: ReadonlySet<string> = new Set(CLINICAL_SECTIONS);

/** What a merge moved, sealed in its `patient_merges` row. */
interface Manifest {
  readonly v: 1;
  /** Records moved, with their current version at the time of the merge. */
  readonly records: readonly { readonly id: string; readonly version: number }[];
  /** Rows of the other pseudonym tables moved, by table. */
  readonly rows: Readonly<Record<string, readonly string[]>>;
  /** Care-team memberships the merge added to the target. */
  readonly careTeam: readonly { readonly userId: string; readonly startsAt: string }[];
}

const manifestAt = (mergeId: string): Binding => ({
  table: 'patient_merges',
  column: 'manifest',
  row: mergeId,
  version: 0,
});

export interface MergeResult {
  readonly mergeId: string;
  readonly moved: {
    /** Clinical records (every version of each). */
    readonly records: number;
    /** Document contents re-encrypted. */
    readonly files: number;
    /** Rows of other pseudonym tables (amendment requests, disclosures). */
    readonly related: number;
    /** Care-team memberships added to the target (merge) or ended (undo). */
    readonly careTeam: number;
  };
}

export interface PatientMerge {
  readonly id: string;
  readonly sourceId: string;
  readonly targetId: string;
  readonly mergedBy: string;
  readonly mergedAt: Date;
  readonly unmergedBy: string | null;
  readonly unmergedAt: Date | null;
  /** Records the merge moved. */
  readonly records: number;
}

interface Side {
  readonly id: string;
  readonly link: Link;
  readonly facts: PatientFacts;
}

const conflict = (message: string) => new CustosError('CUSTOS_ERR_CONFLICT', message);

/**
 * Merges `sourceId` into `targetId`. One audit entry (`merge`, the target's pseudonym, the
 * source's in `detail.source`); refused callers get "not found", audited.
 */
export async function mergePatients(
  g: GateCore,
  ctx: AccessContext,
  sourceId: string,
  targetId: string,
): Promise<MergeResult> {
  const mergeId = randomUUID();
  const blobs = new BlobMoves(g);
  const result = await g.prepared(
    ctx,
    { action: 'merge', resourceType: 'patient' },
    async (db, t, keys) => {
      if (typeof sourceId !== 'string' || !isUuid(sourceId)) {
        throw validationError('sourceId', 'must be a patient id');
      }
      if (sourceId === targetId) {
        throw validationError('sourceId', 'must be another patient than the target');
      }
      const { source, target } = await pair(g, db, ctx, t, sourceId, targetId);
      await assertMergeable(db, ctx, source, target, false);
      const rows = await store.loadRecords(db, {
        practiceId: ctx.practiceId,
        pseudonym: source.link.pseudonym,
        kind: 'document',
        allVersions: true,
      });
      await blobs.prepare(db, keys, rows, source.link, target.link);
      return { source, target };
    },
    async (tx, t, prep, keys) => {
      // Decided again inside the transaction, on locked rows: a concurrent change in between
      // (consent, care team, another merge) is seen here. The rows are locked for update first
      // (in id order), before the share lock every gate write takes: two merges of one pair
      // then queue instead of deadlocking on a lock upgrade.
      await store.patientStates(tx, {
        practiceId: ctx.practiceId,
        patientIds: [sourceId, targetId],
        lock: true,
      });
      const { source, target } = await pair(g, tx, ctx, t, sourceId, targetId);
      await assertMergeable(tx, ctx, source, target, true);
      if (source.link.pseudonym !== prep.source.link.pseudonym) {
        throw conflict('the patients changed during the merge; try again');
      }
      const now = g.clock();
      await store.lockRecords(tx, { practiceId: ctx.practiceId, pseudonym: source.link.pseudonym });
      const moved = await moveRecords(g, tx, ctx, keys, blobs, source.link, target.link, null);
      const rows: Record<string, string[]> = {};
      for (const spec of await knownPseudonymTables(tx)) {
        rows[spec.table] = await moveRows(g, tx, ctx, keys, spec, source.link, target.link, {});
      }
      // Nothing of the source may stay behind (a row committed while this ran: try again).
      for (const table of ['records', ...Object.keys(rows)]) {
        const left = await store.countPseudonymRows(tx, {
          practiceId: ctx.practiceId,
          table,
          pseudonym: source.link.pseudonym,
        });
        if (left > 0) {
          throw conflict('the source patient changed during the merge; try again');
        }
      }
      const careTeam = await joinCareTeam(tx, ctx, source.id, target.id, now);
      await tx
        .updateTable('patients')
        .set({ active: false, merged_into: target.id, updated_at: now })
        .where('id', '=', source.id)
        .execute();
      const manifest: Manifest = { v: 1, records: moved.records, rows, careTeam };
      await tx
        .insertInto('patient_merges')
        .values({
          id: mergeId,
          practice_id: ctx.practiceId,
          source_id: source.id,
          target_id: target.id,
          manifest: g.keyring.sealLink(manifestAt(mergeId), Buffer.from(JSON.stringify(manifest), 'utf8')),
          merged_by: ctx.actor.id,
          merged_at: now,
          unmerged_by: null,
          unmerged_at: null,
        })
        .execute();
      const counts = {
        records: moved.records.length,
        files: moved.files,
        related: Object.values(rows).reduce((n, ids) => n + ids.length, 0),
        careTeam: careTeam.length,
      };
      t.detail = { ...(t.detail ?? {}), mergeId, ...counts };
      return () => ({ mergeId, moved: counts });
    },
    () => blobs.undo(),
  );
  await blobs.committed();
  return result;
}

/**
 * Undoes a merge: the records (and related rows) it moved go back to the source, re-sealed under
 * the source's key, with the amendments made to them since; the source is active again; the
 * care-team memberships the merge added end now. Once only (409 after).
 */
export async function unmergePatients(
  g: GateCore,
  ctx: AccessContext,
  mergeId: string,
): Promise<MergeResult> {
  const blobs = new BlobMoves(g);
  const result = await g.prepared(
    ctx,
    { action: 'unmerge', resourceType: 'patient', detail: { mergeId: String(mergeId).slice(0, 64) } },
    async (db, t, keys) => {
      const m = await loadMerge(db, ctx, mergeId, false);
      const { source, target } = await pair(g, db, ctx, t, m.source_id, m.target_id);
      assertUndoable(m, await states(db, ctx, source, target, false), target);
      const manifest = openManifest(g, m);
      const ids = await goingBack(db, ctx, manifest, target.link.pseudonym);
      const rows = await store.loadRecords(db, {
        practiceId: ctx.practiceId,
        pseudonym: target.link.pseudonym,
        kind: 'document',
        allVersions: true,
      });
      await blobs.prepare(
        db,
        keys,
        rows.filter((r) => ids.has(r.id)),
        target.link,
        source.link,
      );
      return undefined;
    },
    async (tx, t, _prep, keys) => {
      const m = await loadMerge(tx, ctx, mergeId, true);
      // For update first, then the gate's share lock (see merge): no lock upgrade to deadlock on.
      await store.patientStates(tx, {
        practiceId: ctx.practiceId,
        patientIds: [m.source_id, m.target_id],
        lock: true,
      });
      const { source, target } = await pair(g, tx, ctx, t, m.source_id, m.target_id);
      assertUndoable(m, await states(tx, ctx, source, target, true), target);
      const manifest = openManifest(g, m);
      const now = g.clock();
      const ids = await goingBack(tx, ctx, manifest, target.link.pseudonym);
      const locked = await store.lockRecords(tx, {
        practiceId: ctx.practiceId,
        pseudonym: target.link.pseudonym,
        recordIds: [...ids],
      });
      if (locked.length !== ids.size) {
        throw conflict('records of this merge moved since; undo later merges first');
      }
      const moved = await moveRecords(g, tx, ctx, keys, blobs, target.link, source.link, ids);
      let related = 0;
      const back = new Map<string, readonly string[]>([['records', [...ids]]]);
      for (const spec of await knownPseudonymTables(tx)) {
        const which = spec.follows
          ? { parent: { column: spec.follows.column, ids: back.get(spec.follows.table) ?? [] } }
          : { ids: manifest.rows[spec.table] ?? [] };
        const returned = await moveRows(g, tx, ctx, keys, spec, target.link, source.link, which);
        back.set(spec.table, returned);
        related += returned.length;
      }
      let careTeam = 0;
      for (const member of manifest.careTeam) {
        const r = await tx
          .updateTable('care_team')
          .set((eb) => ({
            ends_at: eb.fn('greatest', [eb.ref('starts_at'), eb.val(now)]),
            ended_by: ctx.actor.id,
          }))
          .where('practice_id', '=', ctx.practiceId)
          .where('patient_id', '=', target.id)
          .where('user_id', '=', member.userId)
          .where('starts_at', '=', new Date(member.startsAt))
          .where('added_by', '=', m.merged_by)
          .where((eb) => eb.or([eb('ends_at', 'is', null), eb('ends_at', '>', now)]))
          .executeTakeFirst();
        careTeam += Number(r.numUpdatedRows);
      }
      await tx
        .updateTable('patients')
        .set({ active: true, merged_into: null, updated_at: now })
        .where('id', '=', source.id)
        .execute();
      await tx
        .updateTable('patient_merges')
        .set({ unmerged_by: ctx.actor.id, unmerged_at: now })
        .where('id', '=', m.id)
        .execute();
      const counts = { records: moved.records.length, files: moved.files, related, careTeam };
      t.detail = { ...(t.detail ?? {}), ...counts };
      return () => ({ mergeId: m.id, moved: counts });
    },
    () => blobs.undo(),
  );
  await blobs.committed();
  return result;
}

/**
 * The merges a patient took part in (as source or target), oldest first: for those who may read
 * the patient's identity, and for the privacy officer (oversight).
 */
export async function listMerges(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
): Promise<PatientMerge[]> {
  return g.call(ctx, { action: 'list', resourceType: 'patient', detail: { merges: true } }, async (tx, t) => {
    const p = await g.loadPatient(tx, ctx, t, patientId);
    const oversight = g.policy(g.subject(ctx), 'report', { kind: 'patient' }, { patient: p.facts }).allow;
    if (!oversight) {
      g.decide(ctx, t, 'read', { kind: 'patient' }, p.facts);
    }
    const rows = await tx
      .selectFrom('patient_merges')
      .selectAll()
      .where('practice_id', '=', ctx.practiceId)
      .where((eb) => eb.or([eb('source_id', '=', p.id), eb('target_id', '=', p.id)]))
      .orderBy('merged_at')
      .orderBy('id')
      .execute();
    t.detail = { ...(t.detail ?? {}), count: rows.length };
    return () =>
      rows.map((r) => ({
        id: r.id,
        sourceId: r.source_id,
        targetId: r.target_id,
        mergedBy: r.merged_by,
        mergedAt: r.merged_at,
        unmergedBy: r.unmerged_by,
        unmergedAt: r.unmerged_at,
        records: openManifest(g, r).records.length,
      }));
  });
}

// --- deciding ---

/**
 * Loads and decides both patients; the entry names the target by pseudonym and the source in
 * `detail.source` (an unknown source by the id asked for).
 */
async function pair(
  g: GateCore,
  db: store.Tx,
  ctx: AccessContext,
  t: Target,
  sourceId: string,
  targetId: string,
): Promise<{ source: Side; target: Side }> {
  const target = await g.loadPatient(db, ctx, t, targetId);
  authorize(g, ctx, t, target.facts);
  const s: Target = { ...t, resourceId: null, patientPseudonym: null };
  try {
    const source = await g.loadPatient(db, ctx, s, sourceId);
    authorize(g, ctx, s, source.facts);
    return { source, target };
  } finally {
    t.detail = {
      ...(t.detail ?? {}),
      ...(s.detail ?? {}),
      ...(s.patientPseudonym ? { source: s.patientPseudonym } : { sourceId: sourceId.slice(0, 64) }),
    };
  }
}

/** The same decisions for either patient, none depending on what the chart holds. */
function authorize(g: GateCore, ctx: AccessContext, t: Target, facts: PatientFacts): void {
  g.decide(ctx, t, 'care-team', { kind: 'patient' }, facts);
  for (const section of SECTIONS) {
    if (!CLINICAL.has(section)) {
      g.decide(ctx, t, 'write', { kind: 'section', section }, facts);
      continue;
    }
    for (const sensitivity of SENSITIVITIES) {
      g.decide(ctx, t, 'write', { kind: 'section', section, sensitivity }, facts);
    }
  }
}

async function states(
  db: store.Tx,
  ctx: AccessContext,
  source: Side,
  target: Side,
  lock: boolean,
): Promise<{ source: store.PatientState; target: store.PatientState }> {
  const rows = await store.patientStates(db, {
    practiceId: ctx.practiceId,
    patientIds: [source.id, target.id],
    lock,
  });
  const s = rows.find((r) => r.id === source.id);
  const t = rows.find((r) => r.id === target.id);
  if (!s || !t) {
    throw new Denied('not-found');
  }
  return { source: s, target: t };
}

/**
 * Both active and neither merged; and the target at least as protected as the source: its
 * records will be governed by the target's restricted flag and consent directives from now on.
 */
async function assertMergeable(
  db: store.Tx,
  ctx: AccessContext,
  source: Side,
  target: Side,
  lock: boolean,
): Promise<void> {
  const s = await states(db, ctx, source, target, lock);
  if (s.source.merged_into !== null) {
    throw conflict('the source patient was merged already');
  }
  if (s.target.merged_into !== null) {
    throw conflict('the target patient was merged into another patient');
  }
  if (!s.source.active || !s.target.active) {
    throw conflict(`the ${s.source.active ? 'target' : 'source'} patient is inactive; reactivate it first`);
  }
  if (source.facts.restricted && !target.facts.restricted) {
    throw conflict('the source patient is flagged restricted: flag the target as well first');
  }
  if (!covers(target.facts.consent, source.facts.consent)) {
    throw conflict(
      "the source patient's consent directives are not all on the target: record them there first",
    );
  }
}

/** Whether directives `t` are at least as strict as `s` (every exclusion of `s` is in `t`). */
function covers(t: Consent | null, s: Consent | null): boolean {
  if (s === null) {
    return true;
  }
  const has = <T>(list: readonly T[] | undefined, x: T) => (list ?? []).includes(x);
  return (
    s.denyUsers.every((u) => has(t?.denyUsers, u)) &&
    s.denyRoles.every((r) => has(t?.denyRoles, r)) &&
    s.withholdCategories.every((c) => has(t?.withholdCategories, c)) &&
    (!s.portalOptOut || (t?.portalOptOut ?? false))
  );
}

type MergeRow = Awaited<ReturnType<typeof loadMerge>>;

async function loadMerge(db: store.Tx, ctx: AccessContext, mergeId: string, lock: boolean) {
  if (typeof mergeId !== 'string' || !isUuid(mergeId)) {
    throw new Denied('not-found');
  }
  const query = db
    .selectFrom('patient_merges')
    .selectAll()
    .where('practice_id', '=', ctx.practiceId)
    .where('id', '=', mergeId);
  const m = await (lock ? query.forUpdate() : query).executeTakeFirst();
  if (!m) {
    throw new Denied('not-found');
  }
  return m;
}

function assertUndoable(
  m: MergeRow,
  s: { source: store.PatientState; target: store.PatientState },
  target: Side,
): void {
  if (m.unmerged_at !== null) {
    throw conflict('this merge was undone already');
  }
  if (s.source.merged_into !== target.id) {
    throw conflict('the source patient is no longer merged into the target');
  }
  if (s.target.merged_into !== null) {
    throw conflict('the target patient was merged into another patient since: undo that merge first');
  }
}

function openManifest(g: GateCore, m: { id: string; manifest: Buffer }): Manifest {
  return JSON.parse(g.keyring.openLink(manifestAt(m.id), m.manifest).toString('utf8')) as Manifest;
}

/**
 * The records an undo moves back: those the merge moved, plus the amendments written to them
 * since (an amendment belongs with the note it amends), followed down the chain.
 */
async function goingBack(
  tx: store.Tx,
  ctx: AccessContext,
  manifest: Manifest,
  targetPseudonym: string,
): Promise<Set<string>> {
  const ids = new Set(manifest.records.map((r) => r.id));
  let frontier = [...ids];
  while (frontier.length > 0) {
    const next = (
      await store.amendmentsOf(tx, { practiceId: ctx.practiceId, pseudonym: targetPseudonym, ids: frontier })
    ).filter((id) => !ids.has(id));
    for (const id of next) {
      ids.add(id);
    }
    frontier = next;
  }
  return ids;
}

/**
 * The source's current (and future) care-team members join the target's team where they are not
 * on it now; returns the memberships added (the undo ends exactly these).
 */
async function joinCareTeam(
  tx: store.Tx,
  ctx: AccessContext,
  sourceId: string,
  targetId: string,
  now: Date,
): Promise<{ userId: string; startsAt: string }[]> {
  const q = { practiceId: ctx.practiceId, now };
  const onTarget = new Set(
    (await store.openMemberships(tx, { ...q, patientId: targetId }))
      .filter((m) => m.starts_at.getTime() <= now.getTime())
      .map((m) => m.user_id),
  );
  const lasts = (d: Date | null) => d?.getTime() ?? Number.POSITIVE_INFINITY;
  const wanted = new Map<string, { startsAt: Date; endsAt: Date | null }>();
  for (const m of await store.openMemberships(tx, { ...q, patientId: sourceId })) {
    const prev = wanted.get(m.user_id);
    // Of several open memberships of one user, the one that lasts longest.
    if (!onTarget.has(m.user_id) && (!prev || lasts(m.ends_at) > lasts(prev.endsAt))) {
      wanted.set(m.user_id, { startsAt: m.starts_at > now ? m.starts_at : now, endsAt: m.ends_at });
    }
  }
  if (wanted.size === 0) {
    return [];
  }
  await tx
    .insertInto('care_team')
    .values(
      [...wanted].map(([userId, w]) => ({
        practice_id: ctx.practiceId,
        patient_id: targetId,
        user_id: userId,
        starts_at: w.startsAt,
        ends_at: w.endsAt,
        added_by: ctx.actor.id,
      })),
    )
    .execute();
  return [...wanted].map(([userId, w]) => ({ userId, startsAt: w.startsAt.toISOString() }));
}
