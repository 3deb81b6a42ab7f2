import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipReason } from '../support/db.ts';
import { Client, startServer, type TestServer } from '../support/http.ts';
import { enrollStaff } from '../support/staff.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] enumeration.timing.int.test.ts skipped: ${skip}`);
}

/**
 * A timing comparison: it runs in its own vitest project group, after every other suite, so that
 * no other test competes for the two cores while it measures (vitest.config.ts).
 */
describe.skipIf(skip)('no user enumeration', () => {
  let server: TestServer;
  beforeAll(async () => {
    // Production argon2 parameters; lockout and stuffing thresholds out of the way of the measurement.
    server = await startServer({
      productionHasher: true,
      policy: { lockoutThreshold: 10_000, stuffingUsernames: 10_000, loginAttemptsPerMinute: 10_000 },
    });
    await enrollStaff(server, new Client(server), 'gina', ['clinician']);
  }, 120_000);
  afterAll(async () => {
    await server?.close();
  });

  it('answers an unknown user and a wrong password with the same status and body, in comparable time', async () => {
    const c = new Client(server, '127.0.0.12');
    const times = { unknown: [] as number[], wrong: [] as number[] };
    const bodies = new Set<string>();
    for (let i = 0; i < 15; i++) {
      for (const kind of ['unknown', 'wrong'] as const) {
        const t = performance.now();
        const r = await c.post('/api/v1/auth/login', {
          username: kind === 'unknown' ? `ghost-${i}` : 'gina',
          password: 'definitely wrong 123',
        });
        times[kind].push(performance.now() - t);
        expect(r.status).toBe(401);
        bodies.add(r.text);
      }
    }
    expect(bodies.size).toBe(1);
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    const ratio = median(times.unknown) / median(times.wrong);
    expect(
      ratio,
      `medians ${median(times.unknown).toFixed(1)} ms vs ${median(times.wrong).toFixed(1)} ms`,
    ).toBeGreaterThan(0.8);
    expect(ratio).toBeLessThan(1.2);
  });
});
