import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCustos, skipReason, type TestCustos } from '../../test/support/db.ts';
import { condition, identity, note, staffRow, system, user } from '../../test/support/fixtures.ts';
import { type AccessContext, accessContext } from '../access/context.ts';
import { keyIdOf } from '../crypto/envelope.ts';
import { isCustosError } from '../errors.ts';
import { tinyPdf } from '../files/fixtures.ts';
import { recordBodyAt } from './cipher.ts';
import { PSEUDONYM_TABLES } from './merge.moves.ts';
import type { ClinicalRecord } from './model.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] merge.int.test.ts skipped: ${skip}`);
}

/** Without the file's metadata that a move changes (the content's blob id). */
const comparable = (r: ClinicalRecord) => {
  const { blobId: _, ...body } = r.body as { blobId?: string };
  return { id: r.id, version: r.version, status: r.status, body };
};

/** Merging duplicate patients through the gate: moved, re-sealed, audited, and undone exactly. */
describe.skipIf(skip)('merging duplicate patients', () => {
  let c: TestCustos;
  let doc: AccessContext;
  let nurse: AccessContext;
  let desk: AccessContext;
  let officer: AccessContext;
  let outsider: AccessContext;
  let colleagueId: string;
  let sys: AccessContext;
  const pdf = tinyPdf('Synthetic merge report');

  const entries = () => c.database.owner.selectFrom('audit_entries').selectAll().orderBy('seq').execute();
  const blobFiles = (): string[] => {
    const out: string[] = [];
    const root = path.join(path.dirname(c.keyFile), 'blobs');
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) {
          if (e.name !== 'tmp') {
            walk(p);
          }
        } else {
          out.push(p);
        }
      }
    };
    walk(root);
    return out;
  };
  /** The key id in the header of every stored version of a record. */
  const keyIdsOf = async (recordId: string) => {
    const rows = await c.database.owner
      .selectFrom('record_versions' as never)
      .select(['version' as never, 'body' as never])
      .where('record_id' as never, '=', recordId as never)
      .execute();
    return [
      ...new Set(
        (rows as { version: number; body: Buffer }[]).map((r) =>
          keyIdOf(r.body, recordBodyAt(recordId, r.version)),
        ),
      ),
    ];
  };
  const history = async (ids: readonly string[]) =>
    Object.fromEntries(
      await Promise.all(ids.map(async (id) => [id, (await c.chart.recordHistory(doc, id)).map(comparable)])),
    );
  const error = async (p: Promise<unknown>) => p.then(() => undefined).catch((e: unknown) => e);

  beforeAll(async () => {
    c = await openTestCustos();
    sys = system(c.practiceId);
    const d = await staffRow(c.database.db, c.practiceId, 'mergedoc', ['clinician']);
    colleagueId = await staffRow(c.database.db, c.practiceId, 'mergecolleague', ['clinician']);
    const n = await staffRow(c.database.db, c.practiceId, 'mergenurse', ['nurse']);
    const f = await staffRow(c.database.db, c.practiceId, 'mergedesk', ['frontdesk']);
    const o = await staffRow(c.database.db, c.practiceId, 'mergeofficer', ['privacy_officer']);
    const x = await staffRow(c.database.db, c.practiceId, 'mergeoutsider', ['clinician']);
    doc = accessContext({ ...user(c.practiceId, d), reauthenticatedAt: new Date() });
    nurse = user(c.practiceId, n, 'nurse');
    desk = user(c.practiceId, f, 'frontdesk');
    officer = user(c.practiceId, o, 'privacy_officer');
    outsider = user(c.practiceId, x);
  });
  afterAll(async () => {
    await c?.cleanup();
  });

  /** A kept patient with one record, and its duplicate with a little of everything. */
  async function duplicates(family: string) {
    const team = { careTeam: [doc.actor.id] };
    const target = (await c.chart.createPatient(sys, identity({ name: { given: ['Kept'], family } }), team))
      .id;
    const source = (
      await c.chart.createPatient(sys, identity({ name: { given: ['Dupe'], family } }), {
        careTeam: [doc.actor.id, colleagueId, nurse.actor.id],
      })
    ).id;
    await c.chart.addCareTeamMember(sys, target, nurse.actor.id);
    const own = (await c.chart.createRecord(doc, target, condition())).id;
    const signed = (await c.chart.createRecord(sys, source, note('Synthetic signed note.'))).id;
    const cond = (await c.chart.createRecord(doc, source, condition())).id;
    await c.chart.updateRecord(doc, cond, {
      expectedVersion: 1,
      body: { ...condition().body, clinicalStatus: 'resolved' },
    });
    const psy = (
      await c.chart.createRecord(doc, source, {
        ...note('Synthetic psychotherapy content.'),
        sensitivity: 'psychotherapy',
      })
    ).id;
    const file = await c.chart.attachFile(doc, source, {
      content: Readable.from([pdf]),
      title: 'Synthetic scan',
      fileName: 'scan.pdf',
    });
    const request = (await c.chart.requestAmendment(doc, signed, { text: 'Synthetic request text.' })).id;
    const thread = await c.chart.startThread(doc, source, {
      subject: 'Synthetic subject',
      text: 'Synthetic first message.',
    });
    return {
      target,
      source,
      own,
      moved: [signed, cond, psy, file.id],
      signed,
      file: file.id,
      request,
      thread: thread.id,
    };
  }

  let f: Awaited<ReturnType<typeof duplicates>>;
  let before: Record<string, ReturnType<typeof comparable>[]>;
  let mergeId: string;
  let sourceKey: string;
  let targetKey: string;

  it('moves every record of the source to the target, re-sealed under its key, in one audited call', async () => {
    f = await duplicates('Mergetest');
    before = await history(f.moved);
    sourceKey = (await keyIdsOf(f.signed))[0] ?? '';
    targetKey = (await keyIdsOf(f.own))[0] ?? '';
    expect(sourceKey).not.toBe(targetKey);
    const stale = await sql<{ body: Buffer }>`SELECT body FROM record_versions
      WHERE record_id = ${f.signed} AND version = 1`.execute(c.database.owner);
    const blobsBefore = blobFiles();
    const docBefore = (await c.chart.recordHistory(doc, f.file))[0]?.body;
    const seq = (await entries()).length;

    const r = await c.chart.mergePatients(doc, f.source, f.target);
    mergeId = r.mergeId;
    expect(r.moved).toEqual({ records: 4, files: 1, related: 3, careTeam: 1 });

    // One entry: `merge`, the target by pseudonym, the source's in the detail.
    const after = (await entries()).slice(seq);
    const [targetPs, sourcePs] = [
      await c.chart.patientPseudonym(sys, f.target),
      await c.chart.patientPseudonym(sys, f.source),
    ];
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({
      action: 'merge',
      resource_type: 'patient',
      patient_pseudonym: targetPs,
      outcome: 'success',
      actor_id: doc.actor.id,
    });
    expect(after[0]?.detail).toEqual({
      source: sourcePs,
      mergeId,
      records: 4,
      files: 1,
      related: 3,
      careTeam: 1,
    });

    // Readable on the target with the same bodies and versions; gone from the source.
    expect(await history(f.moved)).toEqual(before);
    const listed = (await c.chart.listRecords(doc, f.target)).map((x) => x.id);
    expect(listed.sort()).toEqual([f.own, ...f.moved].sort());
    expect(await c.chart.listRecords(doc, f.source)).toEqual([]);
    for (const id of f.moved) {
      expect(await keyIdsOf(id), id).toEqual([targetKey]);
    }
    // A writer that sealed under the source's key before the merge cannot add that version now.
    const late = sql`INSERT INTO record_versions (record_id, practice_id, version, body, created_at, created_by)
      VALUES (${f.signed}, ${c.practiceId}, 99, ${stale.rows[0]?.body}, ${new Date()}, ${doc.actor.id})`;
    await expect(late.execute(c.database.owner)).rejects.toThrow(/another key/);

    // The document: content intact under the new key, the old ciphertext gone.
    const opened = await c.chart.openFile(doc, f.file);
    expect((await buffer(opened.content)).equals(pdf)).toBe(true);
    expect(opened.record.body.blobId).not.toBe((docBefore as { blobId: string }).blobId);
    expect(blobFiles()).toHaveLength(blobsBefore.length);
    expect(blobFiles().some((p) => p.endsWith((docBefore as { blobId: string }).blobId))).toBe(false);

    // Related rows came along, readable under the target.
    const requests = await c.chart.listAmendmentRequests(doc, f.target);
    expect(requests.map((q) => [q.id, q.text])).toEqual([[f.request, 'Synthetic request text.']]);
    const thread = await c.chart.readThread(doc, f.thread);
    expect(thread.thread.patientId).toBe(f.target);
    expect(thread.messages.map((m) => m.text)).toEqual(['Synthetic first message.']);

    // The source: inactive, out of searches, its care team joined to the target's.
    expect((await c.chart.readPatient(doc, f.source)).active).toBe(false);
    const found = await c.chart.searchPatients(doc, { family: 'Mergetest' });
    expect(found.map((p) => p.id)).toEqual([f.target]);
    const team = await c.chart.listCareTeam(doc, f.target);
    expect(
      team
        .filter((m) => m.current)
        .map((m) => m.userId)
        .sort(),
    ).toEqual([doc.actor.id, colleagueId, nurse.actor.id].sort());
    const merges = await c.chart.listMerges(doc, f.source);
    expect(merges).toMatchObject([
      {
        id: mergeId,
        sourceId: f.source,
        targetId: f.target,
        mergedBy: doc.actor.id,
        unmergedAt: null,
        records: 4,
      },
    ]);
    expect(await c.chart.listMerges(officer, f.target)).toHaveLength(1);
  });

  it('refuses a second merge of the source, a merge onto itself, and an unknown source', async () => {
    const again = await error(c.chart.mergePatients(doc, f.source, f.target));
    expect(isCustosError(again, 'CUSTOS_ERR_CONFLICT')).toBe(true);
    const self = await error(c.chart.mergePatients(doc, f.target, f.target));
    expect(isCustosError(self, 'CUSTOS_ERR_VALIDATION') && self.field).toBe('sourceId');
    const unknown = await error(c.chart.mergePatients(doc, randomUUID(), f.target));
    expect(isCustosError(unknown, 'CUSTOS_ERR_NOT_FOUND')).toBe(true);
    // Into the merged (inactive) source: refused as well.
    const into = await error(c.chart.mergePatients(doc, f.target, f.source));
    expect(isCustosError(into, 'CUSTOS_ERR_CONFLICT')).toBe(true);
  });

  it('points a merged source at its target and refuses writes to it and its reactivation', async () => {
    const merged = await c.chart.readPatient(doc, f.source);
    expect({ active: merged.active, mergedInto: merged.mergedInto }).toEqual({
      active: false,
      mergedInto: f.target,
    });
    expect(await c.chart.readPatient(doc, f.target)).not.toHaveProperty('mergedInto');
    const before = await c.chart.listRecords(doc, f.source);
    const write = await error(c.chart.createRecord(doc, f.source, condition()));
    expect(isCustosError(write, 'CUSTOS_ERR_CONFLICT')).toBe(true);
    expect(await c.chart.listRecords(doc, f.source)).toEqual(before);
    // Someone who may not write to the patient still gets "not found", not the merge.
    const outside = await error(c.chart.createRecord(outsider, f.source, condition()));
    expect(isCustosError(outside, 'CUSTOS_ERR_NOT_FOUND')).toBe(true);
    const reactivate = await error(c.chart.setPatientActive(doc, f.source, { active: true }));
    expect(isCustosError(reactivate, 'CUSTOS_ERR_CONFLICT')).toBe(true);
    expect((reactivate as Error).message).toMatch(/undo the merge/);
    expect((await c.chart.readPatient(doc, f.source)).active).toBe(false);
  });

  it('undoes the merge exactly: records, versions, documents and related rows back, added members ended', async () => {
    // After the merge: a record of the target's own, and an amendment of a moved note.
    const later = (await c.chart.createRecord(doc, f.target, note('Synthetic later note.'))).id;
    const amendment = (
      await c.chart.amendNote(doc, f.signed, {
        reason: 'Synthetic correction',
        body: { body: 'Synthetic amended text.', date: '2026-01-03T10:00:00Z' },
      })
    ).id;
    const blobsBefore = blobFiles().length;
    const seq = (await entries()).length;

    const r = await c.chart.unmergePatients(doc, mergeId);
    expect(r).toEqual({ mergeId, moved: { records: 5, files: 1, related: 3, careTeam: 1 } });
    const after = (await entries()).slice(seq);
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({ action: 'unmerge', resource_type: 'patient', outcome: 'success' });
    expect(after[0]?.detail).toMatchObject({ mergeId, records: 5 });

    // Back on the source with identical bodies and versions (the moved note now names its amendment).
    expect(await history(f.moved)).toEqual(before);
    expect((await c.chart.listRecords(doc, f.source)).map((x) => x.id).sort()).toEqual(
      [...f.moved, amendment].sort(),
    );
    expect((await c.chart.listRecords(doc, f.target)).map((x) => x.id).sort()).toEqual([f.own, later].sort());
    for (const id of [...f.moved, amendment]) {
      expect(await keyIdsOf(id), id).toEqual([sourceKey]);
    }
    const opened = await c.chart.openFile(doc, f.file);
    expect((await buffer(opened.content)).equals(pdf)).toBe(true);
    expect(blobFiles()).toHaveLength(blobsBefore);
    expect((await c.chart.listAmendmentRequests(doc, f.source)).map((q) => q.text)).toEqual([
      'Synthetic request text.',
    ]);
    expect(await c.chart.listAmendmentRequests(doc, f.target)).toEqual([]);
    expect((await c.chart.readThread(doc, f.thread)).thread.patientId).toBe(f.source);

    // The source is active again; the member the merge added to the target is not on it any more.
    expect((await c.chart.readPatient(doc, f.source)).active).toBe(true);
    const team = await c.chart.listCareTeam(doc, f.target);
    expect(
      team
        .filter((m) => m.current)
        .map((m) => m.userId)
        .sort(),
    ).toEqual([doc.actor.id, nurse.actor.id].sort());
    expect(team.find((m) => m.userId === colleagueId)).toMatchObject({
      current: false,
      endedBy: doc.actor.id,
    });
    expect((await c.chart.listMerges(doc, f.target))[0]).toMatchObject({ unmergedBy: doc.actor.id });

    // Once only.
    const twice = await error(c.chart.unmergePatients(doc, mergeId));
    expect(isCustosError(twice, 'CUSTOS_ERR_CONFLICT')).toBe(true);
    expect((await entries()).at(-1)).toMatchObject({ action: 'unmerge', outcome: 'error' });
  });

  it('answers callers who may not merge both patients with "not found", audited, and moves nothing', async () => {
    const g = await duplicates('Mergedenied');
    // On the target's care team only.
    await c.chart.addCareTeamMember(sys, g.target, outsider.actor.id);
    const records = await history(g.moved);
    for (const who of [outsider, nurse, desk, officer]) {
      const e = await error(c.chart.mergePatients(who, g.source, g.target));
      expect(isCustosError(e, 'CUSTOS_ERR_NOT_FOUND'), who.role).toBe(true);
      expect((await entries()).at(-1), who.role).toMatchObject({
        action: 'merge',
        outcome: 'denied',
        actor_id: who.actor.id,
      });
    }
    expect(await history(g.moved)).toEqual(records);
    expect((await c.chart.readPatient(doc, g.source)).active).toBe(true);
    expect(await c.chart.listMerges(doc, g.source)).toEqual([]);
    // Undoing someone's merge is decided the same way.
    const { mergeId: id } = await c.chart.mergePatients(doc, g.source, g.target);
    const e = await error(c.chart.unmergePatients(outsider, id));
    expect(isCustosError(e, 'CUSTOS_ERR_NOT_FOUND')).toBe(true);
    expect((await entries()).at(-1)).toMatchObject({ action: 'unmerge', outcome: 'denied' });
    expect(await error(c.chart.unmergePatients(doc, randomUUID()))).toSatisfy((x: unknown) =>
      isCustosError(x, 'CUSTOS_ERR_NOT_FOUND'),
    );
  });

  it('serializes two merges of the same pair: one moves, the other is a conflict (never a deadlock)', async () => {
    const g = await duplicates('Mergetwice');
    const results = await Promise.allSettled([
      c.chart.mergePatients(doc, g.source, g.target),
      c.chart.mergePatients(doc, g.source, g.target),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(isCustosError(failed.reason, 'CUSTOS_ERR_CONFLICT')).toBe(true);
    expect((await c.chart.listMerges(doc, g.target)).length).toBe(1);
  });

  it('refuses to merge into a less protected target (restricted flag, consent directives)', async () => {
    const g = await duplicates('Mergeprotected');
    await c.chart.setConsent(doc, g.source, 0, { withholdCategories: ['mental-health'] });
    const consent = await error(c.chart.mergePatients(doc, g.source, g.target));
    expect(isCustosError(consent, 'CUSTOS_ERR_CONFLICT')).toBe(true);
    await c.chart.setConsent(doc, g.target, 0, { withholdCategories: ['mental-health'] });
    await c.chart.setRestricted(doc, g.source, true);
    const restricted = await error(c.chart.mergePatients(doc, g.source, g.target));
    expect(isCustosError(restricted, 'CUSTOS_ERR_CONFLICT')).toBe(true);
    await c.chart.setRestricted(doc, g.target, true);
    expect((await c.chart.mergePatients(doc, g.source, g.target)).moved.records).toBe(4);
  });

  it('moves nothing and leaves no new blob when a document cannot be re-encrypted', async () => {
    const g = await duplicates('Mergetampered');
    const body = (await c.chart.recordHistory(doc, g.file))[0]?.body;
    const blobId = (body as { blobId: string }).blobId;
    const file = blobFiles().find((p) => p.endsWith(blobId)) ?? '';
    const bytes = fs.readFileSync(file);
    bytes.writeUInt8((bytes.at(-20) ?? 0) ^ 0x01, bytes.length - 20);
    fs.writeFileSync(file, bytes);
    const count = blobFiles().length;
    const e = await error(c.chart.mergePatients(doc, g.source, g.target));
    expect(isCustosError(e, 'CUSTOS_ERR_INTEGRITY')).toBe(true);
    expect(blobFiles()).toHaveLength(count);
    expect((await entries()).at(-1)).toMatchObject({ action: 'merge', outcome: 'error' });
    expect((await c.chart.listRecords(doc, g.source)).map((x) => x.id).sort()).toEqual([...g.moved].sort());
    expect((await c.chart.readPatient(doc, g.source)).active).toBe(true);
  });

  it('knows every table that carries a pseudonym or a patient id', async () => {
    const columns = async (name: string) =>
      (
        await sql<{ t: string }>`SELECT DISTINCT table_name AS t FROM information_schema.columns
          WHERE table_schema = current_schema() AND column_name = ${name} ORDER BY 1`.execute(
          c.database.owner,
        )
      ).rows.map((r) => r.t);
    // Clinical rows: every one moves with a merge (a merge refuses to run otherwise).
    expect(await columns('pseudonym')).toEqual(['records', ...PSEUDONYM_TABLES.map((t) => t.table)].sort());
    // Identity-side rows stay with the source, each for a reason; the care team is joined.
    const STAYS: Record<string, string> = {
      patient_versions: "the source's identity, kept for its history and an undo",
      patient_links: "the source's pseudonym and keys (its rows may come back)",
      patient_index: 'blind indexes of the source; searches leave inactive patients out',
      patient_consents: "checked: the target's directives must cover the source's",
      break_glass_grants: 'emergency access granted to that patient, reviewed as such',
      care_team: "copied: current members join the target's team (ended again on undo)",
    };
    expect(await columns('patient_id')).toEqual(Object.keys(STAYS).sort());
  });
});
