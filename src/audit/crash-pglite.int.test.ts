import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { engine } from '../../test/support/db.ts';
import { openCustosOn } from '../app/custos.ts';
import { sealOnce } from './sealer.ts';
import { verifyTrail } from './verify.ts';

const skip =
  engine() === 'pglite' ? undefined : 'the embedded-database crash test runs in the PGlite project';
if (skip) {
  console.warn(`[custos] crash-pglite.int.test.ts skipped: ${skip}`);
}

/**
 * Issue 3, crash: kill -9 a process writing audit entries and sealing them on the embedded
 * database (a data folder on disk); reopen the folder: `verify` passes, and after one sealing
 * round every committed entry is sealed.
 */
describe.skipIf(skip)('kill -9 on the embedded database', () => {
  it('recovers: verify passes and every committed entry gets sealed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-crash-'));
    const keyFile = path.join(dir, 'custos.keys');
    const pgDir = path.join(dir, 'pg');
    try {
      const script = path.resolve(import.meta.dirname, '../../test/support/audit-writer.ts');
      const child = spawn(process.execPath, ['--import', 'tsx', script, `pglite:${pgDir}`, keyFile], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
        child.on('exit', (code) => reject(new Error(`writer exited early (${code})`)));
      });
      // Let it write and seal for a while, then kill it mid-flight.
      await new Promise((r) => setTimeout(r, 3000));
      child.kill('SIGKILL');
      await new Promise((r) => child.on('exit', r));

      const custos = await openCustosOn(
        { engine: 'pglite', pglite: await PGlite.create(pgDir), ownsPglite: true },
        { keyFile },
      );
      try {
        const key = { publicKey: custos.keyring.auditPublicKey, keyId: custos.keyring.auditKeyId };
        const r1 = await verifyTrail(custos.database.db, key);
        expect(r1).toMatchObject({ ok: true });
        // The writer's sealer wrote checkpoints before it died.
        expect(r1.ok && r1.entries).toBeGreaterThan(0);
        await sealOnce({ db: custos.database.db, keyring: custos.keyring });
        const total = Number(
          (await sql<{ n: string }>`SELECT count(*) AS n FROM audit_entries`.execute(custos.database.db))
            .rows[0]?.n,
        );
        expect(total).toBeGreaterThan(0);
        expect(await verifyTrail(custos.database.db, key)).toMatchObject({
          ok: true,
          entries: total,
          unsealed: 0,
        });
      } finally {
        await custos.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
