import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';
import { buildServer } from '../../src/http/server.ts';
import { buildServices, type Services } from '../../src/http/services.ts';
import { loadOrCreateCertificate } from '../../src/http/tls.ts';
import type { IdentityPolicy } from '../../src/identity/config.ts';
import { PasswordHasher } from '../../src/identity/password.ts';
import { createMailer } from '../../src/notify/mailer.ts';
import { openTestCustos, type TestCustos } from './db.ts';

/** A fake clock tests move by hand (the only thing tests may fake). */
export class FakeClock {
  #now: number;
  constructor(start = Date.UTC(2026, 10, 23, 9, 0, 0)) {
    this.#now = start;
  }
  now = (): Date => new Date(this.#now);
  advance(ms: number): void {
    this.#now += ms;
  }
}

export interface TestServer {
  readonly custos: TestCustos;
  readonly services: Services;
  readonly app: FastifyInstance;
  readonly url: string;
  readonly port: number;
  readonly clock: FakeClock;
  readonly ca: string;
  /** Where the server's e-mails go (no relay in tests): read with `readOutbox` (set by `startServer`). */
  readonly outboxDir?: string;
  close(): Promise<void>;
}

/** The real server over HTTPS on 127.0.0.1, a fresh database, and a fake clock. */
export async function startServer(
  options: {
    policy?: Partial<IdentityPolicy>;
    trustedProxies?: string[];
    productionHasher?: boolean;
    /** PGlite in a folder (`custos.testDb.pgliteDir`) rather than in memory, for scans of its files. */
    onDisk?: boolean;
  } = {},
): Promise<TestServer> {
  const clock = new FakeClock();
  const custos = await openTestCustos({ clock: clock.now, ...(options.onDisk ? { onDisk: true } : {}) });
  const tls = await loadOrCreateCertificate({ dataDir: `${custos.keyFile}.d` });
  const outboxDir = path.join(path.dirname(custos.keyFile), 'outbox');
  // Weaker argon2 parameters than production keep the suite fast; the production parameters
  // are tested in src/identity/password.test.ts.
  const services = buildServices(custos, {
    clock: clock.now,
    ...(options.policy ? { policy: options.policy } : {}),
    hasher: options.productionHasher
      ? new PasswordHasher()
      : new PasswordHasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 }),
    mail: {
      mailer: createMailer(
        {
          dataDir: outboxDir,
          smtpUrl: undefined,
          smtpCaFile: undefined,
          mailFrom: 'Custos <no-reply@example.org>',
        },
        { outboxDir },
      ),
      portalUrl: 'https://portal.example.org/',
    },
  });
  const app = await buildServer(services, {
    tls,
    ...(options.trustedProxies ? { trustedProxies: options.trustedProxies } : {}),
    onInternalError: (e) => console.error('[custos test server] internal error:', e),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  return {
    custos,
    services,
    app,
    url: `https://127.0.0.1:${port}`,
    port,
    clock,
    ca: tls.cert,
    outboxDir,
    async close() {
      await app.close();
      await services.notices.drain();
      await custos.cleanup();
    },
  };
}

export interface Response {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: unknown;
  readonly text: string;
}

/** An HTTPS client with a cookie jar, bound to one loopback source address (127.0.0.2, …). */
export class Client {
  readonly cookies = new Map<string, string>();
  readonly #server: TestServer;
  readonly #from: string;

  constructor(server: TestServer, from = '127.0.0.1') {
    this.#server = server;
    this.#from = from;
  }

  get origin(): string {
    return `https://127.0.0.1:${this.#server.port}`;
  }

  request(
    method: string,
    path: string,
    body?: unknown,
    options: {
      headers?: Record<string, string>;
      origin?: string | null;
      minVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2';
      maxVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
    } = {},
  ): Promise<Response> {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers: Record<string, string> = { ...options.headers };
    if (payload !== undefined && !headers['content-type']) {
      headers['content-type'] = 'application/json';
    }
    if (options.origin !== null && method !== 'GET') {
      headers.origin = options.origin ?? this.origin;
    }
    if (this.cookies.size > 0) {
      headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    }
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: this.#server.port,
          path,
          method,
          headers,
          ca: this.#server.ca,
          servername: 'localhost',
          localAddress: this.#from,
          agent: false,
          ...(options.minVersion ? { minVersion: options.minVersion } : {}),
          ...(options.maxVersion ? { maxVersion: options.maxVersion } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            for (const c of ([] as string[]).concat(res.headers['set-cookie'] ?? [])) {
              const [pair] = c.split(';');
              const [k, v] = (pair ?? '').split('=');
              if (k && v !== undefined) {
                if (v === '' || /Max-Age=0|Expires=Thu, 01 Jan 1970/i.test(c)) {
                  this.cookies.delete(k);
                } else {
                  this.cookies.set(k, v);
                }
              }
            }
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              // not JSON (the docs page)
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed, text });
          });
        },
      );
      req.on('error', reject);
      if (payload !== undefined) {
        req.write(payload);
      }
      req.end();
    });
  }

  get = (path: string, o?: Parameters<Client['request']>[3]) => this.request('GET', path, undefined, o);
  post = (path: string, body?: unknown, o?: Parameters<Client['request']>[3]) =>
    this.request('POST', path, body ?? {}, o);
  delete = (path: string, o?: Parameters<Client['request']>[3]) => this.request('DELETE', path, undefined, o);
}

/** Asserts an error answer: its status, its code, and (for a 400) the field it names. */
export function expectError(r: Response, status: number, code: string, field?: string): void {
  expect({ status: r.status, code: (r.body as { error?: { code: string } }).error?.code }, r.text).toEqual({
    status,
    code,
  });
  if (field !== undefined) {
    expect((r.body as { error: { field?: string } }).error.field).toBe(field);
  }
}
