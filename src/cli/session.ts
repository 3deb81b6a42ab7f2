import { type Custos, openCustos } from '../app/custos.ts';
import { sealIfFree } from '../audit/sealer.ts';
import { configuredMirror } from '../audit/syslog.ts';
import type { Config } from '../config/config.ts';
import type { Io } from './output.ts';

/**
 * Opens Custos for one command, runs it, then seals the audit entries the command wrote (unless
 * a running server's sealer holds the lock) and closes. Sealing also runs after a failure:
 * denials and errors are audited too.
 */
export async function withCustos<T>(config: Config, io: Io, fn: (c: Custos) => Promise<T>): Promise<T> {
  const c = await openCustos(config);
  try {
    return await fn(c);
  } finally {
    const mirror = configuredMirror(config);
    try {
      await sealIfFree({
        db: c.database.db,
        keyring: c.keyring,
        ...(mirror.mirror ? { mirror: mirror.mirror } : {}),
      });
    } catch (e) {
      // The entries are committed and will be sealed by the next round; say so, without detail.
      io.stderr.write(
        `custos: warning: audit sealing did not run (${(e as Error).name}); run custos audit seal\n`,
      );
    }
    await mirror.close();
    await c.close();
  }
}
