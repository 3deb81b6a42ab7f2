import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { systemContext } from '../src/access/context.ts';
import { openCustosOn } from '../src/app/custos.ts';
import { buildServer } from '../src/http/server.ts';
import { buildServices } from '../src/http/services.ts';
import { loadOrCreateCertificate } from '../src/http/tls.ts';
import { totpAt } from '../src/identity/totp.ts';
import { closedLoop, createDatabase, keyFileIn, percentile, report, round, tempDir } from './lib.ts';

/**
 * Issue 4 on PostgreSQL: the cost of the session check per authenticated request, password
 * logins per second (production argon2id), and the p99 of legitimate logins from 127.0.0.3
 * while blocked addresses send 1,000+ attempts per second, against the p99 without the attack.
 */
const PASSWORD = 'correct horse battery staple 42';
const ATTACK_RATE = Number(process.env.BENCH_ATTACK_RATE ?? 1200);
const LEGIT_LOGINS = Number(process.env.BENCH_LEGIT_LOGINS ?? 150);

function client(port: number, ca: string, from: string) {
  const agent = new https.Agent({
    keepAlive: true,
    localAddress: from,
    ca,
    servername: 'localhost',
    maxSockets: 16,
  });
  const origin = `https://127.0.0.1:${port}`;
  return (method: string, path: string, body?: unknown, cookie?: string) =>
    new Promise<{ status: number; cookies: string[] }>((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = https.request(
        {
          host: '127.0.0.1',
          port,
          path,
          method,
          agent,
          headers: {
            origin,
            ...(payload ? { 'content-type': 'application/json' } : {}),
            ...(cookie ? { cookie } : {}),
          },
        },
        (res) => {
          res.resume();
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              cookies: ([] as string[]).concat(res.headers['set-cookie'] ?? []),
            }),
          );
        },
      );
      req.on('error', reject);
      if (payload) {
        req.write(payload);
      }
      req.end();
    });
}

export async function run(): Promise<void> {
  const db = await createDatabase();
  const dir = tempDir('custos-bench-');
  const custos = await openCustosOn(
    { engine: 'postgres', url: db.url, poolSize: 10 },
    { keyFile: keyFileIn(dir) },
  );
  const services = buildServices(custos, { policy: { loginAttemptsPerMinute: 1_000_000 } });
  const tls = await loadOrCreateCertificate({ dataDir: dir });
  const app = await buildServer(services, { tls });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  try {
    const ctx = systemContext({
      practiceId: custos.practiceId,
      purpose: 'operations',
      requestId: randomUUID(),
    });
    const { token } = await services.accounts.add(ctx, { username: 'bench-user', roles: ['clinician'] });
    await services.accounts.enrollPassword(token, PASSWORD);
    const { secret } = await services.accounts.enrollTotp(token);
    await services.accounts.confirmTotp(token, totpAt(secret, new Date()), { ctx });
    await new Promise((r) => setTimeout(r, 31_000 - (Date.now() % 30_000)));
    const legit = client(port, tls.cert, '127.0.0.3');
    const step1 = await legit('POST', '/api/v1/auth/login', { username: 'bench-user', password: PASSWORD });
    const mfa = step1.cookies.map((c) => c.split(';')[0] ?? '').join('; ');
    const step2 = await legit(
      'POST',
      '/api/v1/auth/second-factor',
      { code: totpAt(secret, new Date()) },
      mfa,
    );
    const session =
      step2.cookies.map((c) => c.split(';')[0] ?? '').find((c) => c.startsWith('__Host-custos-session')) ??
      '';

    // 1. Session check: an authenticated route against the unauthenticated health check.
    const authed = await closedLoop(() => legit('GET', '/api/v1/auth/session', undefined, session), {
      concurrency: 1,
      durationMs: 4000,
    });
    const bare = await closedLoop(() => legit('GET', '/healthz'), { concurrency: 1, durationMs: 4000 });
    report({
      bench: 'session-check-overhead',
      engine: 'postgres',
      authenticatedP50ms: authed.p50ms,
      healthzP50ms: bare.p50ms,
      overheadUs: round((authed.p50ms - bare.p50ms) * 1000, 0),
    });

    // 2. Password logins per second (argon2id m=19 MiB, t=2, p=1), 2 concurrent clients.
    const logins = await closedLoop(
      () => legit('POST', '/api/v1/auth/login', { username: 'bench-user', password: PASSWORD }),
      { concurrency: 2, durationMs: 6000 },
    );
    report({
      bench: 'password-logins',
      engine: 'postgres',
      loginsPerSec: logins.opsPerSec,
      p50ms: logins.p50ms,
      p99ms: logins.p99ms,
    });

    // 3. Legitimate logins under attack from blocked addresses.
    const measureLegit = async () => {
      const lat: number[] = [];
      for (let i = 0; i < LEGIT_LOGINS; i++) {
        const t = performance.now();
        const r = await legit('POST', '/api/v1/auth/login', { username: 'bench-user', password: PASSWORD });
        lat.push(performance.now() - t);
        if (r.status !== 200) {
          throw new Error(`legitimate login failed: ${r.status}`);
        }
      }
      return lat.sort((a, b) => a - b);
    };
    const quiet = await measureLegit();
    const attackers = ['127.0.0.2', '127.0.0.4', '127.0.0.5', '127.0.0.6'].map((a) => ({
      address: a,
      send: client(port, tls.cert, a),
    }));
    for (const a of attackers) {
      for (const u of ['v1', 'v2', 'v3', 'v4', 'v5']) {
        await a.send('POST', '/api/v1/auth/login', { username: u, password: 'Spring2026!!' });
      }
    }
    let sent = 0;
    let refused = 0;
    let stop = false;
    const flood = (async () => {
      const start = performance.now();
      const inflight = new Set<Promise<unknown>>();
      while (!stop) {
        const due = ((performance.now() - start) / 1000) * ATTACK_RATE;
        while (sent < due && inflight.size < 256) {
          const a = attackers[sent % attackers.length]!;
          const p = a.send('POST', '/api/v1/auth/login', { username: 'bench-user', password: 'guess' }).then(
            (r) => {
              refused += r.status === 403 ? 1 : 0;
            },
            () => undefined,
          );
          const tracked = p.finally(() => inflight.delete(tracked));
          inflight.add(tracked);
          sent++;
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      await Promise.all(inflight);
      return (performance.now() - start) / 1000;
    })();
    await new Promise((r) => setTimeout(r, 500));
    const hashesBefore = services.hasher.computations;
    const underAttack = await measureLegit();
    const hashes = services.hasher.computations - hashesBefore;
    stop = true;
    const seconds = await flood;
    const p99q = percentile(quiet, 99);
    const p99a = percentile(underAttack, 99);
    report({
      bench: 'logins-under-attack',
      engine: 'postgres',
      attackRatePerSec: round(sent / seconds, 0),
      refused,
      attackAttempts: sent,
      argon2DuringAttack: hashes,
      legitLogins: LEGIT_LOGINS,
      quietP99ms: round(p99q, 1),
      attackP99ms: round(p99a, 1),
      ratio: round(p99a / p99q, 2),
      target: 2,
    });
  } finally {
    await app.close();
    await custos.close();
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
