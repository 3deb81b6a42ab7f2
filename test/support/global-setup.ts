import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Tarball of a fresh PGlite cluster: initdb in wasm takes seconds, loading this takes ~1 s. */
    pgliteTemplate: string;
    /** PostgreSQL server for this run, or why there is none. */
    postgres: { url: string } | { skip: string };
  }
}

/**
 * Once per project: build the PGlite template, and find out whether PostgreSQL is reachable.
 * When it is not, the PostgreSQL half of the suite says so and skips; the PGlite half still runs.
 */
export default async function setup(project: TestProject): Promise<() => void> {
  const engine = process.env.CUSTOS_TEST_ENGINE ?? project.config.env?.CUSTOS_TEST_ENGINE;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-template-'));
  const template = path.join(dir, 'pglite.tar.gz');
  // Every project gets the template: the PostgreSQL run still uses PGlite for CLI tests.
  const pglite = await PGlite.create();
  fs.writeFileSync(template, Buffer.from(await (await pglite.dumpDataDir('gzip')).arrayBuffer()));
  await pglite.close();
  project.provide('pgliteTemplate', template);

  const url = process.env.CUSTOS_TEST_DATABASE_URL;
  if (engine === 'postgres') {
    if (!url) {
      const skip =
        'CUSTOS_TEST_DATABASE_URL is not set: the PostgreSQL half of the integration suite is skipped';
      console.warn(`[custos] ${skip}`);
      project.provide('postgres', { skip });
    } else {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
      try {
        await client.connect();
        await client.query('SELECT 1');
        project.provide('postgres', { url });
      } catch (e) {
        const skip = `PostgreSQL not reachable at ${redact(url)} (${(e as Error).message}): the PostgreSQL half of the integration suite is skipped`;
        console.warn(`[custos] ${skip}`);
        project.provide('postgres', { skip });
      } finally {
        await client.end().catch(() => undefined);
      }
    }
  } else {
    project.provide('postgres', { skip: 'not the PostgreSQL project' });
  }
  return () => fs.rmSync(dir, { recursive: true, force: true });
}

const redact = (url: string) => url.replace(/:\/\/([^:@/]+):[^@/]*@/, '://$1:***@');
