import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import autocannon from 'autocannon';
import Fastify from 'fastify';
import { sql } from 'kysely';
import { systemContext } from '../src/access/context.ts';
import { openCustosOn } from '../src/app/custos.ts';
import type { NewRecord } from '../src/chart/model.ts';
import { generateDemoPatients } from '../src/demo/generate.ts';
import { buildServer } from '../src/http/server.ts';
import { buildServices } from '../src/http/services.ts';
import { loadOrCreateCertificate } from '../src/http/tls.ts';
import { totpAt } from '../src/identity/totp.ts';
import { createDatabase, keyFileIn, report, round, tempDir, withPeakRss } from './lib.ts';

/**
 * Issue 6: the clinic API over HTTPS with keep-alive on PostgreSQL, autocannon at 32 connections
 * (in a worker thread; client and server share this machine's cores): dossier read, section list,
 * note create, patient search, each against a bare Fastify HTTPS route returning the same dossier
 * JSON from memory (the framework ceiling) in the same run. Then upload and download of a 10 MB
 * file: MB/s and peak RSS against the RSS before (streaming: RSS must not grow by the file's size).
 */
const CONNECTIONS = Number(process.env.BENCH_API_CONNECTIONS ?? 32);
const SECONDS = Number(process.env.BENCH_API_SECONDS ?? 10);
const PATIENTS = Number(process.env.BENCH_API_PATIENTS ?? 200);
const ROWS = 20;
const FILE_MB = 10;
const FILE_ROUNDS = Number(process.env.BENCH_API_FILE_ROUNDS ?? 5);
const PASSWORD = 'correct horse battery staple 42';

type Cannon = {
  requests: { average: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
};

async function cannon(
  port: number,
  ca: string,
  name: string,
  req: { method?: 'GET' | 'POST'; path: string; body?: unknown; cookie?: string },
) {
  const r = (await autocannon({
    url: `https://127.0.0.1:${port}${req.path}`,
    method: req.method ?? 'GET',
    connections: CONNECTIONS,
    duration: SECONDS,
    workers: 1,
    tlsOptions: { ca, servername: 'localhost' },
    headers: {
      origin: `https://127.0.0.1:${port}`,
      ...(req.cookie ? { cookie: req.cookie } : {}),
      ...(req.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(req.body !== undefined ? { body: JSON.stringify(req.body) } : {}),
  })) as unknown as Cannon;
  if (r.non2xx > 0 || r.errors > 0 || r.timeouts > 0) {
    throw new Error(`${name}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
  }
  return { reqPerSec: round(r.requests.average, 0), p50ms: r.latency.p50, p99ms: r.latency.p99 };
}

function request(
  port: number,
  ca: string,
  agent: https.Agent,
  method: string,
  urlPath: string,
  options: { cookie?: string; json?: unknown; headers?: Record<string, string> } = {},
) {
  return new Promise<{ status: number; cookies: string[]; body: string }>((resolve, reject) => {
    const payload = options.json === undefined ? undefined : JSON.stringify(options.json);
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        method,
        agent,
        ca,
        servername: 'localhost',
        headers: {
          origin: `https://127.0.0.1:${port}`,
          ...(payload ? { 'content-type': 'application/json' } : {}),
          ...(options.cookie ? { cookie: options.cookie } : {}),
          ...options.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            cookies: ([] as string[]).concat(res.headers['set-cookie'] ?? []),
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Streams a file as one multipart part; never holds it in memory. */
function upload(
  port: number,
  ca: string,
  agent: https.Agent,
  cookie: string,
  patientId: string,
  file: string,
) {
  const boundary = `----custos${randomUUID().replace(/-/g, '')}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench-report.txt"\r\nContent-Type: text/plain\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const size = head.length + fs.statSync(file).size + tail.length;
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: `/api/v1/patients/${patientId}/files`,
        method: 'POST',
        agent,
        ca,
        servername: 'localhost',
        headers: {
          origin: `https://127.0.0.1:${port}`,
          cookie,
          'content-type': `multipart/form-data; boundary=${boundary}`,
          'content-length': String(size),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.write(head);
    const input = fs.createReadStream(file);
    input.on('error', reject);
    input.on('end', () => req.end(tail));
    input.pipe(req, { end: false });
  });
}

/** Downloads and discards; returns the byte count. */
function download(port: number, ca: string, agent: https.Agent, cookie: string, recordId: string) {
  return new Promise<number>((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: `/api/v1/records/${recordId}/content`,
        method: 'GET',
        agent,
        ca,
        servername: 'localhost',
        headers: { cookie },
      },
      (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`download: ${res.statusCode}`));
          res.resume();
          return;
        }
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
        });
        res.on('end', () => resolve(n));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

export async function run(): Promise<void> {
  const db = await createDatabase();
  const dir = tempDir('custos-bench-api-');
  const custos = await openCustosOn(
    { engine: 'postgres', url: db.url, poolSize: 16 },
    { keyFile: keyFileIn(dir), blobDir: path.join(dir, 'blobs') },
  );
  const services = buildServices(custos, { policy: { loginAttemptsPerMinute: 1_000_000 } });
  const tls = await loadOrCreateCertificate({ dataDir: dir });
  const app = await buildServer(services, { tls });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 4 });
  const bare = Fastify({ https: { key: tls.key, cert: tls.cert } });
  try {
    const sys = systemContext({
      practiceId: custos.practiceId,
      purpose: 'operations',
      requestId: randomUUID(),
    });
    const { token } = await services.accounts.add(sys, { username: 'bench-clinician', roles: ['clinician'] });
    await services.accounts.enrollPassword(token, PASSWORD);
    const { secret } = await services.accounts.enrollTotp(token);
    await services.accounts.confirmTotp(token, totpAt(secret, new Date()), { ctx: sys });
    const clinician = await custos.database.db
      .selectFrom('users')
      .select('id')
      .where('username', '=', 'bench-clinician')
      .executeTakeFirstOrThrow();

    // Patients with 20 clinical rows each (the demo's own records, cycled), on the clinician's care team.
    const imp = systemContext({ practiceId: custos.practiceId, purpose: 'import', requestId: 'bench' });
    const ids: string[] = [];
    let searchFor: { family: string; birthDate: string } | undefined;
    for (const p of generateDemoPatients({ count: PATIENTS, seed: 11 })) {
      const { id } = await custos.chart.createPatient(imp, p.identity, { careTeam: [clinician.id] });
      const records = p.records.filter((r) => r.encounterRef === undefined);
      for (let i = 0; i < ROWS; i++) {
        const r = records[i % records.length]!;
        await custos.chart.createRecord(imp, id, {
          kind: r.kind,
          body: r.body,
          sensitivity: r.sensitivity,
        } as NewRecord);
      }
      ids.push(id);
      searchFor ??= { family: p.identity.name.family, birthDate: p.identity.birthDate };
    }
    await sql`ANALYZE`.execute(custos.database.owner);

    // Log in (a fresh TOTP window: the enrollment used the current code).
    await new Promise((r) => setTimeout(r, 31_000 - (Date.now() % 30_000)));
    const step1 = await request(port, tls.cert, agent, 'POST', '/api/v1/auth/login', {
      json: { username: 'bench-clinician', password: PASSWORD },
    });
    const mfa = step1.cookies.map((c) => c.split(';')[0] ?? '').join('; ');
    const step2 = await request(port, tls.cert, agent, 'POST', '/api/v1/auth/second-factor', {
      cookie: mfa,
      json: { code: totpAt(secret, new Date()) },
    });
    const cookie =
      step2.cookies.map((c) => c.split(';')[0] ?? '').find((c) => c.startsWith('__Host-custos-session')) ??
      '';
    if (step2.status !== 200 || !cookie) {
      throw new Error(`login failed: ${step1.status} ${step2.status}`);
    }
    const patient = ids[0]!;
    const dossier = await request(port, tls.cert, agent, 'GET', `/api/v1/patients/${patient}/dossier`, {
      cookie,
    });
    if (dossier.status !== 200) {
      throw new Error(`dossier: ${dossier.status}`);
    }

    // The framework ceiling: the same JSON from memory, same TLS certificate, no plugins.
    const frozen = JSON.parse(dossier.body) as unknown;
    bare.get('/dossier', async () => frozen);
    await bare.listen({ host: '127.0.0.1', port: 0 });
    const barePort = (bare.server.address() as AddressInfo).port;

    await cannon(port, tls.cert, 'warm-up', { path: `/api/v1/patients/${patient}/dossier`, cookie });
    const ceiling = await cannon(barePort, tls.cert, 'bare', { path: '/dossier' });
    const read = await cannon(port, tls.cert, 'dossier', {
      path: `/api/v1/patients/${patient}/dossier`,
      cookie,
    });
    const list = await cannon(port, tls.cert, 'section-list', {
      path: `/api/v1/patients/${ids[1]}/records?kind=observation`,
      cookie,
    });
    const search = await cannon(port, tls.cert, 'search', {
      method: 'POST',
      path: '/api/v1/patients/search',
      body: searchFor,
      cookie,
    });
    const create = await cannon(port, tls.cert, 'note-create', {
      method: 'POST',
      path: `/api/v1/patients/${ids[2]}/records`,
      body: { kind: 'note', body: { body: 'Synthetic benchmark note.', date: '2026-01-02T10:00:00Z' } },
      cookie,
    });
    const common = {
      engine: 'postgres',
      transport: 'https keep-alive',
      connections: CONNECTIONS,
      seconds: SECONDS,
    };
    report({ bench: 'api-bare-fastify-ceiling', ...common, ...ceiling, bodyBytes: dossier.body.length });
    report({
      bench: 'api-dossier-read',
      ...common,
      ...read,
      records: ROWS,
      ratioToCeiling: round(read.reqPerSec / ceiling.reqPerSec, 3),
    });
    report({ bench: 'api-section-list', ...common, ...list });
    report({ bench: 'api-patient-search', ...common, ...search, patients: PATIENTS });
    report({ bench: 'api-note-create', ...common, ...create });

    // 10 MB upload and download, sequential, one connection.
    const file = path.join(dir, 'bench-report.txt');
    const line = 'Synthetic benchmark report line, plain text only, for upload measurement.\n';
    fs.writeFileSync(
      file,
      line.repeat(Math.ceil((FILE_MB * 1024 * 1024) / line.length)).slice(0, FILE_MB * 1024 * 1024),
    );
    const size = fs.statSync(file).size;
    global.gc?.();
    const rssBefore = round(process.memoryUsage.rss() / 2 ** 20, 1);
    const recordIds: string[] = [];
    const up = await withPeakRss(async () => {
      const t = performance.now();
      for (let i = 0; i < FILE_ROUNDS; i++) {
        const r = await upload(port, tls.cert, agent, cookie, ids[3]!, file);
        if (r.status !== 201) {
          throw new Error(`upload: ${r.status} ${r.body.slice(0, 200)}`);
        }
        recordIds.push((JSON.parse(r.body) as { id: string }).id);
      }
      return (performance.now() - t) / 1000;
    });
    const down = await withPeakRss(async () => {
      const t = performance.now();
      for (const id of recordIds) {
        const n = await download(port, tls.cert, agent, cookie, id);
        if (n !== size) {
          throw new Error(`download: ${n} bytes, expected ${size}`);
        }
      }
      return (performance.now() - t) / 1000;
    });
    const mb = (size * FILE_ROUNDS) / 1e6;
    report({
      bench: 'api-file-transfer',
      engine: 'postgres',
      fileMB: round(size / 1e6, 1),
      rounds: FILE_ROUNDS,
      uploadMBps: round(mb / up.result, 1),
      downloadMBps: round(mb / down.result, 1),
      rssBeforeMiB: rssBefore,
      uploadPeakRssMiB: up.peakRssMiB,
      downloadPeakRssMiB: down.peakRssMiB,
      uploadRssGrowthMiB: round(up.peakRssMiB - rssBefore, 1),
      downloadRssGrowthMiB: round(down.peakRssMiB - rssBefore, 1),
    });
    fs.rmSync(file, { force: true });
  } finally {
    agent.destroy();
    await bare.close();
    await app.close();
    await custos.close();
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
