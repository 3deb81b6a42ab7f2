/**
 * A child process for the crash test: appends audit entries from several writers (with random
 * rollbacks) and runs the sealer, until it is killed with SIGKILL. Prints "ready" once writing.
 * Usage: node --import tsx test/support/audit-writer.ts DATABASE_URL|pglite:DIR KEY_FILE
 */
import { randomUUID } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import { systemContext } from '../../src/access/context.ts';
import { openCustosOn } from '../../src/app/custos.ts';
import { append } from '../../src/audit/append.ts';
import { SealerService } from '../../src/audit/sealer.ts';

const [url = '', keyFile = ''] = process.argv.slice(2);
const pgliteDir = url.startsWith('pglite:') ? url.slice('pglite:'.length) : undefined;
const custos = pgliteDir
  ? await openCustosOn({ engine: 'pglite', pglite: await PGlite.create(pgliteDir) }, { keyFile })
  : await openCustosOn({ engine: 'postgres', url, poolSize: 12 }, { keyFile });
const ctx = systemContext({ practiceId: custos.practiceId, purpose: 'maintenance', requestId: randomUUID() });
const sealer = new SealerService({
  db: custos.database.db,
  keyring: custos.keyring,
  engine: custos.database.engine,
  intervalMs: 20,
});
sealer.start();
let ready = false;
await Promise.all(
  Array.from({ length: 8 }, async () => {
    for (;;) {
      await custos.database.db
        .transaction()
        .execute(async (tx) => {
          for (let i = 0; i < 3; i++) {
            await append(
              tx,
              ctx,
              { action: 'read', resourceType: 'patient', outcome: 'success' },
              new Date(),
            );
          }
          if (Math.random() < 0.2) {
            throw new Error('rollback');
          }
        })
        .catch(() => undefined);
      if (!ready) {
        ready = true;
        process.stdout.write('ready\n');
      }
    }
  }),
);
