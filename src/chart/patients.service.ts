import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { AccessContext } from '../access/context.ts';
import { validationError } from '../errors.ts';
import * as store from './chart.store.ts';
import { type Link, linkAt, newDataKey, newPseudonym, patientBodyAt, sealJson } from './cipher.ts';
import { type GateCore, openIdentityRow, wrappedKeys } from './gate-core.ts';
import { type Patient, parseIdentity } from './model.ts';
import { type PatientQuery, queryTerms } from './search-terms.ts';

/** Identity-store calls of the gate: register, read, history, update, search, care team. */

const SEARCH_CANDIDATES = 1000;

export async function createPatient(
  g: GateCore,
  ctx: AccessContext,
  input: unknown,
  options: { careTeam?: readonly string[] },
): Promise<{ id: string; version: number }> {
  return g.call(ctx, { action: 'create', resourceType: 'patient' }, async (tx, t) => {
    const identity = parseIdentity(input);
    g.authorize(ctx, t, { patientInPractice: false, onCareTeam: false });
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
    const team = options.careTeam ?? [];
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
    const p = await g.patientFacts(db, ctx, t, patientId);
    return {
      query: { identity: { patientIds: [p.id], allVersions }, keyIds: [p.link.identityKeyId] },
      reveal: (rows, keys) => {
        const wk = wrappedKeys(rows);
        return rows.filter((r) => r.part === 'identity').map((r) => openIdentityRow(keys, wk, r));
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
    g.authorize(ctx, t, { patientInPractice: false, onCareTeam: false });
    const { terms, recheck } = queryTerms(q);
    const candidates = await store.searchIndex(db, {
      practiceId: ctx.practiceId,
      terms: terms.map((x) => ({ kind: x.kind, hash: g.keyring.blindIndex(x.kind, x.value) })),
      limit: SEARCH_CANDIDATES,
      actorId: ctx.actor.id,
      now: g.clock(),
    });
    const visible = candidates
      .filter((c) => ctx.actor.kind === 'system' || c.on_team)
      .map((c) => ({ id: c.id, link: g.link(c.link, c.id) }))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    // The entry names every patient whose identity this search decrypts (the candidates, more
    // than the matches only when a long prefix needs rechecking); decryption comes after it.
    t.detail = { count: visible.length, pseudonyms: visible.map((v) => v.link.pseudonym) };
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
          .sort((a, b) => (a.id < b.id ? -1 : 1))
          .slice(0, q.limit);
      },
    };
  });
}

export async function addCareTeamMember(
  g: GateCore,
  ctx: AccessContext,
  patientId: string,
  userId: string,
  endsAt: Date | undefined,
): Promise<void> {
  return g.call(ctx, { action: 'care-team', resourceType: 'care-team' }, async (tx, t) => {
    const p = await g.patientFacts(tx, ctx, t, patientId);
    t.detail = { userId };
    await tx
      .insertInto('care_team')
      .values({
        practice_id: ctx.practiceId,
        patient_id: p.id,
        user_id: userId,
        starts_at: g.clock(),
        ends_at: endsAt ?? null,
        added_by: ctx.actor.id,
      })
      .execute();
    return () => undefined;
  });
}
