/**
 * `npm run bench`: runs every benchmark in sequence and prints one JSON object per line.
 * Select some with `npm run bench -- gate-read search`. Benchmarks are never run as tests.
 */
const all = ['gate-read', 'access', 'import', 'search', 'audit', 'report', 'auth', 'api'] as const;
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const name of all) {
  if (wanted.length > 0 && !wanted.includes(name)) {
    continue;
  }
  const mod = (await import(`./${name}.ts`)) as { run: () => Promise<void> };
  await mod.run();
}
