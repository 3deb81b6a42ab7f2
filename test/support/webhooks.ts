import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { generate } from 'selfsigned';
import { buildServer } from '../../src/http/server.ts';
import { buildServices } from '../../src/http/services.ts';
import { loadOrCreateCertificate } from '../../src/http/tls.ts';
import { PasswordHasher } from '../../src/identity/password.ts';
import { openTestCustos } from './db.ts';
import { FakeClock, type TestServer } from './http.ts';

/**
 * Webhook receivers for the HTTP suites: an HTTPS server on 127.0.0.1 with a self-signed
 * certificate that records every request, and the real Custos server set up to reach it.
 */

/** A self-signed certificate for 127.0.0.1 (the receiver's; trusted only through the dispatcher's `ca`). */
export async function certificate(): Promise<{ cert: string; key: string }> {
  const pems = await generate([{ name: 'commonName', value: 'webhook-receiver.test' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

export interface Captured {
  readonly path: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** An HTTPS receiver on 127.0.0.1 that records every request and answers from a per-path script. */
export class Receiver {
  readonly requests: Captured[] = [];
  /** Status codes to answer, per path, in order; then 200. `hang` never answers. */
  readonly script = new Map<string, (number | 'hang')[]>();
  readonly #server: https.Server;

  constructor(tls: { cert: string; key: string }) {
    this.#server = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = req.url ?? '/';
        this.requests.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        const next = this.script.get(path)?.shift() ?? 200;
        if (next === 'hang') {
          return;
        }
        if (next >= 300 && next < 400) {
          res.writeHead(next, { location: '/elsewhere' });
          res.end();
          return;
        }
        res.writeHead(next, { 'content-type': 'text/plain' });
        res.end('ok');
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `https://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  on(path: string): Captured[] {
    return this.requests.filter((r) => r.path === path);
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

/** The real server, with webhooks allowed to reach 127.0.0.1 and trusting the receiver's certificate. */
export async function startWebhookServer(ca: string): Promise<TestServer> {
  const clock = new FakeClock();
  const custos = await openTestCustos({ clock: clock.now });
  const tls = await loadOrCreateCertificate({ dataDir: `${custos.keyFile}.d` });
  const services = buildServices(custos, {
    clock: clock.now,
    hasher: new PasswordHasher({ memoryCost: 1024, timeCost: 1, parallelism: 1 }),
    webhooks: { ca, allowPrivateAddresses: true, timeoutMs: 1500 },
  });
  const app = await buildServer(services, {
    tls,
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
    async close() {
      await app.close();
      await custos.cleanup();
    },
  };
}
