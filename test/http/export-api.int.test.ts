import { createHash } from 'node:crypto';
import https from 'node:https';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openArchive } from '../../src/files/export-archive.ts';
import { skipReason } from '../support/db.ts';
import { identity } from '../support/fixtures.ts';
import { Client, expectError, startServer, type TestServer } from '../support/http.ts';
import { enrollStaff, logIn, reauth as reauthAs, type Staff } from '../support/staff.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] export-api.int.test.ts skipped: ${skip}`);
}

const FAMILY = 'Exportapisynthetica';
const NOTE = 'Synthetic export API note, exported.';
const PSY = 'Synthetic export API psychotherapy marker, never exported.';
const PASS = 'synthetic api export passphrase';
const PURPOSE = 'Synthetic migration of Exampleville practice records';

/** A binary-safe request with the client's cookies (the support client decodes bodies as UTF-8). */
function rawPost(server: TestServer, client: Client, path: string, body: unknown) {
  const payload = JSON.stringify(body);
  return new Promise<{ status: number; headers: Record<string, unknown>; bytes: Buffer }>(
    (resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: server.port,
          path,
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            origin: client.origin,
            cookie: [...client.cookies].map(([k, v]) => `${k}=${v}`).join('; '),
          },
          ca: server.ca,
          servername: 'localhost',
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    },
  );
}

/** Export controls over real HTTPS, on both engines: per-patient export and the bulk export. */
describe.skipIf(skip)('export API over HTTPS', () => {
  let server: TestServer;
  const staff: Record<string, Staff> = {};
  const as: Record<string, Client> = {};
  const patients: string[] = [];

  const reauth = (who: string) => reauthAs(server, as[who]!, staff[who]!);
  const lastSeq = async () =>
    String(
      (
        await server.custos.database.owner
          .selectFrom('audit_entries')
          .select((eb) => eb.fn.max('seq').as('m'))
          .executeTakeFirst()
      )?.m ?? '0',
    );
  const entriesOf = (actorId: string, since: string) =>
    server.custos.database.owner
      .selectFrom('audit_entries')
      .selectAll()
      .where('seq', '>', since)
      .where('actor_id', '=', actorId)
      .orderBy('seq')
      .execute();
  const body = (over: Record<string, unknown> = {}) => ({
    purposeCode: 'migration',
    purpose: PURPOSE,
    passphrase: PASS,
    ...over,
  });

  beforeAll(async () => {
    server = await startServer();
    for (const [name, roles] of Object.entries({
      officer: ['privacy_officer'],
      doc: ['clinician'],
      admin: ['admin'],
      desk: ['frontdesk'],
    })) {
      staff[name] = await enrollStaff(server, new Client(server), name, roles);
      as[name] = new Client(server);
      await logIn(server, as[name], staff[name]!);
    }
    for (let i = 0; i < 2; i++) {
      const p = await as.doc!.post('/api/v1/patients', {
        identity: identity({ name: { given: ['Exa'], family: `${FAMILY}${i}` } }),
      });
      const id = (p.body as { id: string }).id;
      patients.push(id);
      const n = await as.doc!.post(`/api/v1/patients/${id}/records`, {
        kind: 'note',
        body: { body: NOTE, date: '2026-01-02T10:00:00Z' },
      });
      const psy = await as.doc!.post(`/api/v1/patients/${id}/records`, {
        kind: 'note',
        body: { body: PSY, date: '2026-01-02T11:00:00Z' },
        sensitivity: 'psychotherapy',
      });
      expect([p.status, n.status, psy.status]).toEqual([201, 201, 201]);
    }
  }, 180_000);
  afterAll(async () => {
    await server?.close();
  });

  it("gives the care team one patient's FHIR Bundle, without psychotherapy notes even for their author", async () => {
    const before = await lastSeq();
    const r = await as.doc!.get(`/api/v1/patients/${patients[0]}/export`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^application\/fhir\+json/);
    expect(r.headers['content-disposition']).toBe(`attachment; filename="patient-${patients[0]}.json"`);
    const bundle = r.body as { resourceType: string; entry: { resource: Record<string, unknown> }[] };
    expect(bundle.resourceType).toBe('Bundle');
    expect(bundle.entry.map((e) => e.resource.resourceType)).toEqual(['Patient', 'DocumentReference']);
    const data = (bundle.entry[1]!.resource as { content: { attachment: { data: string } }[] }).content[0]!
      .attachment.data;
    expect(Buffer.from(data, 'base64').toString('utf8')).toBe(NOTE);
    expect(r.text).not.toContain(Buffer.from(PSY).toString('base64'));
    expect(
      (await entriesOf(staff.doc!.id, before)).map((e) => [e.action, e.resource_type, e.outcome]),
    ).toEqual([['export', 'chart', 'success']]);
    // Front desk and the privacy officer have no export grant: the 404 of a missing patient, audited.
    for (const who of ['desk', 'officer']) {
      const b = await lastSeq();
      expectError(await as[who]!.get(`/api/v1/patients/${patients[0]}/export`), 404, 'CUSTOS_ERR_NOT_FOUND');
      expect((await entriesOf(staff[who]!.id, b)).map((e) => [e.action, e.outcome])).toEqual([
        ['export', 'denied'],
      ]);
    }
  });

  it('answers clinician, admin and front desk with the 404 of a missing route, audited', async () => {
    for (const who of ['doc', 'admin', 'desk']) {
      await reauth(who);
      const before = await lastSeq();
      expectError(await as[who]!.post('/api/v1/exports', body()), 404, 'CUSTOS_ERR_NOT_FOUND');
      expectError(await as[who]!.get('/api/v1/exports'), 404, 'CUSTOS_ERR_NOT_FOUND');
      expect(
        (await entriesOf(staff[who]!.id, before)).map((e) => [e.action, e.resource_id, e.outcome, e.reason]),
        who,
      ).toEqual([
        ['route-denied', '/api/v1/exports', 'denied', 'role'],
        ['route-denied', '/api/v1/exports', 'denied', 'role'],
      ]);
    }
    const none = await server.custos.database.owner
      .selectFrom('audit_entries')
      .select('seq')
      .where('action', '=', 'export')
      .where('resource_type', '=', 'export')
      .execute();
    expect(none).toEqual([]);
  });

  it('asks the privacy officer for a step-up first, then for a purpose, naming the field', async () => {
    // The login counted as an authentication; 6 minutes later it no longer does.
    server.clock.advance(6 * 60_000);
    expectError(await as.officer!.post('/api/v1/exports', body()), 403, 'CUSTOS_ERR_STEP_UP');
    await reauth('officer');
    const { purpose: _, ...noPurpose } = body();
    const bad: [unknown, string][] = [
      [noPurpose, 'body.purpose'],
      [body({ purpose: 'too short' }), 'body.purpose'],
      [body({ purposeCode: 'research' }), 'body.purposeCode'],
      [body({ passphrase: 'short secret' }), 'body.passphrase'],
    ];
    for (const [b, field] of bad) {
      const r = await as.officer!.post('/api/v1/exports', b);
      expectError(r, 400, 'CUSTOS_ERR_VALIDATION', field);
      expect(r.text).not.toContain('short secret');
    }
  });

  it('streams the encrypted archive of every active patient, audited once with the count, and lists it', async () => {
    await reauth('officer');
    const before = await lastSeq();
    const r = await rawPost(server, as.officer!, '/api/v1/exports', body());
    expect(r.status, r.bytes.toString('utf8').slice(0, 200)).toBe(200);
    const exportId = r.headers['x-custos-export-id'] as string;
    expect(exportId).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.headers['content-type']).toBe('application/octet-stream');
    expect(r.headers['content-disposition']).toBe(`attachment; filename="custos-export-${exportId}.cxa"`);
    expect(r.headers['cache-control']).toBe('no-store');
    // The bytes on the wire hold nothing readable.
    for (const m of [FAMILY, NOTE, PSY, PASS, PURPOSE, 'resourceType']) {
      expect(r.bytes.includes(Buffer.from(m)), m).toBe(false);
    }
    const entries = await entriesOf(staff.officer!.id, before);
    expect(entries.map((e) => [e.action, e.resource_type, e.resource_id, e.outcome, e.purpose])).toEqual([
      ['export', 'export', exportId, 'success', 'export'],
    ]);
    expect(entries[0]!.detail).toMatchObject({ scope: 'practice', patients: 2, purposeCode: 'migration' });
    expect(JSON.stringify(entries)).not.toContain(PURPOSE);

    const { header, content } = await openArchive(Readable.from([r.bytes]), PASS);
    expect(header).toMatchObject({ exportId, kdf: { name: 'scrypt', N: 2 ** 17, r: 8, p: 1 } });
    const chunks: Buffer[] = [];
    for await (const c of content) {
      chunks.push(c as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    const resources = text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { resourceType: string; id: string; name?: { family: string }[] });
    const exported = resources.filter((x) => x.resourceType === 'Patient');
    expect(exported.map((p) => p.id).sort()).toEqual([...patients].sort());
    expect(exported.map((p) => p.name?.[0]?.family).sort()).toEqual([`${FAMILY}0`, `${FAMILY}1`]);
    const notes = resources
      .filter((x) => x.resourceType === 'DocumentReference')
      .map((x) =>
        Buffer.from(
          (x as unknown as { content: { attachment: { data: string } }[] }).content[0]!.attachment.data,
          'base64',
        ).toString('utf8'),
      );
    expect(notes).toEqual([NOTE, NOTE]);
    expect(text).not.toContain(Buffer.from(PSY).toString('base64'));
    expect(text).not.toContain(PSY);

    const list = await as.officer!.get('/api/v1/exports');
    expect(list.status).toBe(200);
    expect((list.body as { exports: unknown[] }).exports).toMatchObject([
      {
        id: exportId,
        requestedBy: staff.officer!.id,
        requestedByUsername: 'officer',
        purposeCode: 'migration',
        purpose: PURPOSE,
        status: 'finished',
        patientCount: 2,
        exportedPatients: 2,
        exportedRecords: 2,
        archiveBytes: r.bytes.length,
        sha256: createHash('sha256').update(r.bytes).digest('hex'),
      },
    ]);
  });
});
