import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { z } from 'zod';
import type { AccessContext } from '../access/context.ts';
import type { Allow, View } from '../access/policy.ts';
import { CustosError, validationError } from '../errors.ts';
import { isUuid } from '../ids.ts';
import * as store from './chart.store.ts';
import { type Link, linkAt, newDataKey, newPseudonym, patientBodyAt, sealJson } from './cipher.ts';
import { type GateCore, openIdentityRow, projectIdentity, wrappedKeys } from './gate-core.ts';
import { type Patient, parseIdentity } from './model.ts';
import { type PatientQuery, queryTerms } from './search-terms.ts';

/** Identity-store calls of the gate: register, read, history, update, search, care team. */

const SEARCH_CANDIDATES = 1000;

export async function createPatient(
  g: GateCore,
  ctx: AccessContext,
  input: unknown,
  options: { careTeam?: readonly string[]; restricted?: boolean },
): Promise<{ id: string; version: number }> {
  return g.call(ctx, { action: 'create', resourceType: 'patient' }, async (tx, t) => {
    const identity = parseIdentity(input);
    g.decide(ctx, t, 'create-patient', { kind: 'practice' }, null);
    const now = g.clock();
    const id = randomUUID();
    const pseudonym = newPseudonym();
    t.patientPseudonym = pseudonym;
    const { dek, identityKeyId, clinicalKeyId } = newDataKey();
    try {
      const keyRows = [identityKeyId, clinicalKeyId].map((keyId) => {
        const { kekId, wrapped } = g.keyring.wrapDataKey(keyId, dek);
        return { id: keyId, practice_id: ctx.practiceId, kek_id: kekId, wrapped, created_at: now };
      });
      await tx.insertInto('data_keys').values(keyRows).execute();
      await tx
        .insertInto('patients')
        .values({
          id,
          practice_id: ctx.practiceId,
          current_version: 1,
          active: true,
          created_at: now,
          updated_at: now,
        })
        .execute();
      await tx
        .insertInto('patient_versions')
        .values({
          patient_id: id,
          practice_id: ctx.practiceId,
          version: 1,
          body: sealJson(dek, identityKeyId, patientBodyAt(id, 1), identity),
          created_at: now,
          created_by: ctx.actor.id,
        })
        .execute();
      const link: Link = { pseudonym, clinicalKeyId, identityKeyId };
      await tx
        .insertInto('patient_links')
        .values({
          patient_id: id,
          practice_id: ctx.practiceId,
          link: g.keyring.sealLink(linkAt(id), Buffer.from(JSON.stringify(link))),
          pseudonym_index: g.keyring.pseudonymIndex(pseudonym),
        })
        .execute();
    } finally {
      dek.fill(0);
    }
    await store.replaceIndex(tx, { practiceId: ctx.practiceId, patientId: id, rows: g.indexRows(identity) });
    // A clinician or nurse who registers a patient joins the care team; front desk names members.
    const subject = g.subject(ctx);
    const team = [
      ...new Set([
        ...(options.careTeam ?? []),
        ...(subject.kind === 'user' && subject.roles.some((r) => r === 'clinician' || r === 'nurse')
          ? [ctx.actor.id]
          : []),
      ]),
    ];
    if (ctx.actor.kind === 'user') {
      await assertStaff(tx, ctx.practiceId, team, 'careTeam');
      // Naming other members needs the care-team grant, flagging needs the flag grant, decided
      // as if on the new patient (the registering clinician or nurse is on its team).
      const facts = {
        restricted: false,
        onTeam: team.includes(ctx.actor.id),
        breakGlass: null,
        consent: null,
        self: false,
      };
      if (team.some((u) => u !== ctx.actor.id)) {
        g.decide(ctx, t, 'care-team', { kind: 'patient' }, facts);
      }
      if (options.restricted) {
        g.decide(ctx, t, 'flag', { kind: 'patient' }, facts);
      }
    }
    if (options.restricted) {
      await tx.updateTable('patients').set({ restricted: true }).where('id', '=', id).execute();
    }
    if (team.length > 0 || options.restricted) {
      t.detail = {
        ...(team.length > 0 ? { careTeam: team } : {}),
        ...(options.restricted ? { restrictedPatient: true } : {}),
      };
    }
    if (team.length > 0) {
      await tx
        .insertInto('care_team')
        .values(
          team.map((userId) => ({
            practice_id: ctx.practiceId,
            patient_id: id,
            user_id: userId,
            starts_at: now,
            ends_at: null,
            added_by: ctx.actor.id,
          })),
        )
        .execute();
    }
    return () => ({ id, version: 1 });
  });
}

export async function readPatient(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  allVersions: boolean,
): Promise<Patient[]> {
  return g.read(ctx, { action: allVersions ? 'history' : 'read', resourceType: 'patient' }, async (db, t) => {
    const p = await g.patientFacts(db, ctx, t, patientId, 'read', { kind: 'patient' });
    return {
      query: { identity: { patientIds: [p.id], allVersions }, keyIds: [p.link.identityKeyId] },
      reveal: (rows, keys) => {
        const wk = wrappedKeys(rows);
        return rows
          .filter((r) => r.part === 'identity')
          .map((r) => withIdentity(openIdentityRow(keys, wk, r), p.decision.view));
      },
    };
  });
}

export async function updatePatient(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  expectedVersion: number,
  input: unknown,
): Promise<{ version: number }> {
  return g.call(ctx, { action: 'update', resourceType: 'patient' }, async (tx, t, keys) => {
    const identity = parseIdentity(input);
    const head = await g.patientHead(tx, ctx, t, patientId);
    const version = await g.bumpVersion(tx, 'patients', head.id, expectedVersion);
    const now = g.clock();
    await tx
      .insertInto('patient_versions')
      .values({
        patient_id: head.id,
        practice_id: ctx.practiceId,
        version,
        body: sealJson(
          keys.key(head.keyId, head.wrappedKey),
          head.keyId,
          patientBodyAt(head.id, version),
          identity,
        ),
        created_at: now,
        created_by: ctx.actor.id,
      })
      .execute();
    await tx.updateTable('patients').set({ updated_at: now }).where('id', '=', head.id).execute();
    await store.replaceIndex(tx, {
      practiceId: ctx.practiceId,
      patientId: head.id,
      rows: g.indexRows(identity),
    });
    return () => ({ version });
  });
}

/** Why a patient's dossier is closed; kept in the audit entry (a code, never free text). */
export const DEACTIVATION_REASONS = [
  'deceased',
  'moved-away',
  'left-practice',
  'duplicate',
  'other',
] as const;
export type DeactivationReason = (typeof DEACTIVATION_REASONS)[number];

/**
 * Deactivates a patient (the dossier stays readable and writable for those who may; searches
 * leave the patient out unless asked) or reactivates one. Whoever may write the identity may do
 * it (front desk, clinician or nurse on the care team). One audit entry naming the reason code.
 */
export async function setActive(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  change: { active: true } | { active: false; reason: DeactivationReason },
): Promise<{ active: boolean }> {
  return g.call(ctx, { action: 'update', resourceType: 'patient' }, async (tx, t) => {
    if (!change.active && !DEACTIVATION_REASONS.includes(change.reason)) {
      throw validationError('reason', `must be one of ${DEACTIVATION_REASONS.join(', ')}`);
    }
    const head = await g.patientHead(tx, ctx, t, patientId);
    const r = await tx
      .updateTable('patients')
      .set({ active: change.active, updated_at: g.clock() })
      .where('id', '=', head.id)
      .where('active', '=', !change.active)
      .where('merged_into', 'is', null)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) {
      const merged = await tx
        .selectFrom('patients')
        .select('merged_into')
        .where('id', '=', head.id)
        .executeTakeFirst();
      if (merged?.merged_into) {
        throw new CustosError(
          'CUSTOS_ERR_CONFLICT',
          'this patient was merged into another: undo the merge to reactivate it',
        );
      }
      throw new CustosError(
        'CUSTOS_ERR_CONFLICT',
        change.active ? 'this patient is active already' : 'this patient is inactive already',
      );
    }
    t.detail = {
      ...(t.detail ?? {}),
      active: change.active,
      ...(change.active ? {} : { reason: change.reason }),
    };
    return () => ({ active: change.active });
  });
}

const Query = z
  .object({
    familyPrefix: z.string().trim().min(3, 'must have at least 3 characters').max(100).optional(),
    family: z.string().trim().min(1).max(100).optional(),
    birthDate: z
      .string()
      .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date YYYY-MM-DD')
      .optional(),
    identifier: z
      .object({ type: z.enum(['mrn', 'national', 'insurance']), value: z.string().trim().min(1).max(100) })
      .optional(),
    phone: z.string().trim().min(4).max(40).optional(),
    email: z.string().trim().min(3).max(254).optional(),
    limit: z.number().int().min(1).max(200).default(50),
    /** Deactivated patients (deceased, moved away, merged duplicates) are left out unless asked for. */
    includeInactive: z.boolean().default(false),
  })
  .strict();

function parseQuery(input: unknown): z.infer<typeof Query> {
  const r = Query.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw validationError(['query', ...(issue?.path ?? [])].join('.'), issue?.message ?? 'is invalid');
  }
  const q = r.data;
  if (q.birthDate !== undefined && q.family === undefined) {
    throw validationError('query.birthDate', 'needs query.family as well');
  }
  if (!q.familyPrefix && !q.family && !q.identifier && !q.phone && !q.email) {
    throw validationError('query', 'needs at least one of familyPrefix, family, identifier, phone, email');
  }
  return q satisfies PatientQuery;
}

/**
 * Finds patients by blind index, never decrypting the table: only candidates are decrypted.
 * A user sees only patients on their care team; the result never reveals the others.
 */
export async function searchPatients(g: GateCore, ctx: AccessContext, input: unknown): Promise<Patient[]> {
  return g.read(ctx, { action: 'search', resourceType: 'patient' }, async (db, t) => {
    const q = parseQuery(input);
    g.decide(ctx, t, 'search', { kind: 'practice' }, null);
    const subject = g.subject(ctx);
    const { terms, recheck } = queryTerms(q);
    const candidates = await store.searchIndex(db, {
      practiceId: ctx.practiceId,
      terms: terms.map((x) => ({ kind: x.kind, hash: g.keyring.blindIndex(x.kind, x.value) })),
      limit: SEARCH_CANDIDATES,
      actorId: ctx.actor.id,
      now: g.clock(),
      includeInactive: q.includeInactive,
    });
    // Each candidate is decided as a read of that patient's identity: results, counts and
    // "no results" show only patients the caller may see.
    const visible = candidates
      .map((c) => ({ c, d: g.policy(subject, 'read', { kind: 'patient' }, { patient: g.factsOf(ctx, c) }) }))
      .filter((x): x is { c: store.PatientFactsRow; d: Allow } => x.d.allow)
      .map(({ c, d }) => ({ id: c.id, link: g.link(c.link, c.id), view: d.view, restricted: d.restricted }))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    const views = new Map(visible.map((v) => [v.id, v.view]));
    // The entry names every patient whose identity this search decrypts (the candidates, more
    // than the matches only when a long prefix needs rechecking); decryption comes after it.
    t.detail = {
      count: visible.length,
      pseudonyms: visible.map((v) => v.link.pseudonym),
      ...(visible.some((v) => v.restricted) ? { restrictedPatient: true } : {}),
    };
    return {
      query: {
        identity: { patientIds: visible.map((v) => v.id) },
        keyIds: visible.map((v) => v.link.identityKeyId),
      },
      reveal: (rows, keys) => {
        const wk = wrappedKeys(rows);
        return rows
          .filter((r) => r.part === 'identity')
          .map((r) => openIdentityRow(keys, wk, r))
          .filter((p) => recheck(p.identity))
          .map((p) => withIdentity(p, views.get(p.id) ?? {}))
          .sort((a, b) => (a.id < b.id ? -1 : 1))
          .slice(0, q.limit);
      },
    };
  });
}

/** Adds a user to a patient's care team from `startsAt` (default now) until `endsAt` (open). */
export async function addCareTeamMember(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  userId: string,
  period: { startsAt?: Date | undefined; endsAt?: Date | undefined },
): Promise<void> {
  return g.call(ctx, { action: 'care-team', resourceType: 'care-team' }, async (tx, t) => {
    const p = await g.patientFacts(tx, ctx, t, patientId, 'care-team', { kind: 'patient' });
    await assertStaff(tx, ctx.practiceId, [userId], 'userId');
    const now = g.clock();
    const startsAt = period.startsAt ?? now;
    if (period.endsAt && period.endsAt.getTime() <= startsAt.getTime()) {
      throw validationError('endsAt', 'must be after startsAt');
    }
    t.detail = {
      ...(t.detail ?? {}),
      change: 'added',
      userId,
      startsAt: startsAt.toISOString(),
      ...(period.endsAt ? { endsAt: period.endsAt.toISOString() } : {}),
    };
    await tx
      .insertInto('care_team')
      .values({
        practice_id: ctx.practiceId,
        patient_id: p.id,
        user_id: userId,
        starts_at: startsAt,
        ends_at: period.endsAt ?? null,
        added_by: ctx.actor.id,
      })
      .execute();
    return () => undefined;
  });
}

/** Ends a user's current (and future) care-team membership of a patient now. */
export async function endCareTeamMember(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  userId: string,
): Promise<{ ended: number }> {
  return g.call(ctx, { action: 'care-team', resourceType: 'care-team' }, async (tx, t) => {
    const p = await g.patientFacts(tx, ctx, t, patientId, 'care-team', { kind: 'patient' });
    const now = g.clock();
    t.detail = { ...(t.detail ?? {}), change: 'ended', userId };
    const r = await tx
      .updateTable('care_team')
      .set({ ends_at: now, ended_by: ctx.actor.id })
      .where('patient_id', '=', p.id)
      .where('user_id', '=', userId)
      .where((eb) => eb.or([eb('ends_at', 'is', null), eb('ends_at', '>', now)]))
      .executeTakeFirst();
    const ended = Number(r.numUpdatedRows);
    if (ended === 0) {
      throw validationError('userId', 'is not a current member of this care team');
    }
    return () => ({ ended });
  });
}

export interface CareTeamMember {
  readonly userId: string;
  readonly username: string;
  readonly roles: readonly string[];
  readonly startsAt: Date;
  readonly endsAt: Date | null;
  readonly addedBy: string;
  readonly endedBy: string | null;
  readonly current: boolean;
}

/** The care team of a patient, past and present memberships (who may see the chart, and when). */
export async function listCareTeam(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
): Promise<CareTeamMember[]> {
  return g.call(ctx, { action: 'list', resourceType: 'care-team' }, async (tx, t) => {
    // Who may see a chart is for those who see the patient, and for the privacy officer.
    const p = await g.loadPatient(tx, ctx, t, patientId);
    const subject = g.subject(ctx);
    const oversight = g.policy(subject, 'report', { kind: 'patient' }, { patient: p.facts }).allow;
    if (!oversight) {
      g.decide(ctx, t, 'read', { kind: 'patient' }, p.facts);
    }
    const rows = await tx
      .selectFrom('care_team as ct')
      .leftJoin('users as u', (j) => j.on(sql<boolean>`u.id::text = ct.user_id`))
      .select([
        'ct.user_id',
        'u.username',
        'u.roles',
        'ct.starts_at',
        'ct.ends_at',
        'ct.added_by',
        'ct.ended_by',
      ])
      .where('ct.patient_id', '=', p.id)
      .orderBy('ct.starts_at')
      .execute();
    const now = g.clock().getTime();
    return () =>
      rows.map((r) => ({
        userId: r.user_id,
        username: r.username ?? '',
        roles: r.roles ?? [],
        startsAt: r.starts_at,
        endsAt: r.ends_at,
        addedBy: r.added_by,
        endedBy: r.ended_by,
        current: r.starts_at.getTime() <= now && (r.ends_at === null || r.ends_at.getTime() > now),
      }));
  });
}

/** Every id must be an active staff account of the practice (else a 400 naming the field). */
export async function assertStaff(
  tx: store.Tx,
  practiceId: string,
  ids: readonly string[],
  field: string,
): Promise<void> {
  if (ids.length === 0) {
    return;
  }
  if (!ids.every((id) => isUuid(id))) {
    throw validationError(field, 'must name user ids of this practice');
  }
  const found = await tx
    .selectFrom('users')
    .select('id')
    .where('practice_id', '=', practiceId)
    .where('status', '=', 'active')
    .where('id', 'in', ids)
    .execute();
  if (found.length !== new Set(ids).size) {
    throw validationError(field, 'must name active user accounts of this practice');
  }
}

/** A patient with only the identity fields the view shows. */
function withIdentity(p: Patient, view: View): Patient {
  return { ...p, identity: projectIdentity(p.identity, view) };
}
