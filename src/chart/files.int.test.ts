import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCustos, skipReason, type TestCustos } from '../../test/support/db.ts';
import { identity, staffRow, system, user } from '../../test/support/fixtures.ts';
import type { AccessContext } from '../access/context.ts';
import { isCustosError } from '../errors.ts';
import { fakeExecutable, tinyPdf } from '../files/fixtures.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] files.int.test.ts skipped: ${skip}`);
}

/** Files through the gate: decided, streamed into the encrypted store, audited, read back intact. */
describe.skipIf(skip)('files through the gate', () => {
  let c: TestCustos;
  let doc: AccessContext;
  let outsider: AccessContext;
  let patientId: string;
  const blobDir = () => path.join(path.dirname(c.keyFile), 'blobs');
  const blobFiles = (): string[] => {
    const out: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        e.isDirectory() ? walk(p) : out.push(p);
      }
    };
    walk(blobDir());
    const tmp = path.join(blobDir(), 'tmp') + path.sep;
    return out.filter((f) => !f.startsWith(tmp));
  };
  const entries = async () => c.database.db.selectFrom('audit_entries').selectAll().orderBy('seq').execute();

  beforeAll(async () => {
    c = await openTestCustos();
    const d = await staffRow(c.database.db, c.practiceId, 'filedoc', ['clinician']);
    const o = await staffRow(c.database.db, c.practiceId, 'fileoutsider', ['clinician']);
    doc = user(c.practiceId, d);
    outsider = user(c.practiceId, o);
    patientId = (await c.chart.createPatient(system(c.practiceId), identity(), { careTeam: [d] })).id;
  });
  afterAll(async () => {
    await c?.cleanup();
  });

  it('stores a PDF encrypted, audits it once, and reads it back intact', async () => {
    const marker = `MARKER-${randomUUID()}`;
    const pdf = tinyPdf(marker);
    const before = (await entries()).length;
    const r = await c.chart.attachFile(doc, patientId, {
      content: Readable.from([pdf]),
      title: 'Synthetic lab report',
      fileName: `../../${marker}.pdf`,
    });
    expect(r).toMatchObject({ version: 1, contentType: 'application/pdf', size: pdf.length });
    const after = await entries();
    expect(after.length).toBe(before + 1);
    expect(after.at(-1)).toMatchObject({
      action: 'create',
      resource_type: 'record',
      resource_id: r.id,
      outcome: 'success',
    });
    expect(after.at(-1)?.detail).toEqual({
      kind: 'document',
      contentType: 'application/pdf',
      size: pdf.length,
    });
    // Nothing of the content or the name in the store or the trail.
    expect(blobFiles().length).toBe(1);
    for (const f of blobFiles()) {
      expect(fs.readFileSync(f).includes(Buffer.from(marker))).toBe(false);
      expect(f).not.toContain(marker);
    }
    expect(JSON.stringify(after)).not.toContain(marker);
    const { record, content } = await c.chart.openFile(doc, r.id);
    expect(record.body).toMatchObject({
      title: 'Synthetic lab report',
      fileName: `${marker}.pdf`,
      contentType: 'application/pdf',
    });
    expect((await buffer(content)).equals(pdf)).toBe(true);
    expect((await entries()).at(-1)).toMatchObject({ action: 'read', resource_id: r.id, outcome: 'success' });
  });

  it('refuses a spoofed file and a caller off the care team, storing nothing, auditing each', async () => {
    const files = blobFiles().length;
    const spoof = await c.chart
      .attachFile(doc, patientId, {
        content: Readable.from([fakeExecutable()]),
        title: 'Report',
        fileName: 'report.pdf',
      })
      .catch((e: unknown) => e);
    expect(isCustosError(spoof, 'CUSTOS_ERR_VALIDATION') && spoof.field).toBe('file');
    expect((await entries()).at(-1)).toMatchObject({
      action: 'create',
      outcome: 'error',
      reason: 'CUSTOS_ERR_VALIDATION',
    });
    const denied = await c.chart
      .attachFile(outsider, patientId, { content: Readable.from([tinyPdf()]), title: 'Report' })
      .catch((e: unknown) => e);
    expect(isCustosError(denied, 'CUSTOS_ERR_NOT_FOUND')).toBe(true);
    expect((await entries()).at(-1)).toMatchObject({
      action: 'create',
      outcome: 'denied',
      actor_id: outsider.actor.id,
    });
    expect(blobFiles().length).toBe(files);
    const r = await c.chart.attachFile(doc, patientId, {
      content: Readable.from([tinyPdf()]),
      title: 'Report',
    });
    const e = await c.chart.openFile(outsider, r.id).catch((x: unknown) => x);
    expect(isCustosError(e, 'CUSTOS_ERR_NOT_FOUND')).toBe(true);
  });

  it('fails the read when the stored bytes change', async () => {
    const r = await c.chart.attachFile(doc, patientId, {
      content: Readable.from([tinyPdf('Tamper target')]),
      title: 'Tamper',
    });
    const { record } = await c.chart.openFile(doc, r.id);
    const blobId = record.body.blobId ?? '';
    const file = blobFiles().find((f) => f.endsWith(blobId)) ?? '';
    const bytes = fs.readFileSync(file);
    bytes.writeUInt8((bytes.at(-20) ?? 0) ^ 0x01, bytes.length - 20);
    fs.writeFileSync(file, bytes);
    const opened = await c.chart.openFile(doc, r.id);
    const e = await buffer(opened.content).catch((x: unknown) => x);
    expect(isCustosError(e, 'CUSTOS_ERR_INTEGRITY')).toBe(true);
  });
});
