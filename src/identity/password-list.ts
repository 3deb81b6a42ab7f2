import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

/**
 * The blocklist of commonly used and breached passwords (NIST SP 800-63B 5.1.1.2, OWASP
 * Authentication Cheat Sheet "Password Strength Controls"). Built by
 * `scripts/build-password-list.ts`; provenance and licences in `wordlists/README.md`.
 *
 * Entries are NFKC-normalized and lowercased, so a lookup folds its input the same way.
 */
const LIST_URL = new URL('./wordlists/common-passwords.txt.gz', import.meta.url);

let cached: ReadonlySet<string> | undefined;

/**
 * The list as a set, read and decompressed on first use and kept for the process lifetime
 * (972,641 entries: 1.2-1.7 s and ~70 MB of heap on the 2-core reference machine, most of it
 * building the set). Loading lazily keeps processes that never set a password (CLI, sealer)
 * from paying for it; a server may call this at start-up to move the cost out of the first
 * request. Alternative not taken: binary search over the sorted text with an offset table would
 * load in ~0.2 s with ~20 MB, at the price of hand-written search code; a set is the simplest
 * correct lookup.
 */
export function commonPasswords(): ReadonlySet<string> {
  if (cached === undefined) {
    const text = gunzipSync(readFileSync(LIST_URL)).toString('utf8');
    const entries = new Set(text.split('\n'));
    entries.delete('');
    cached = entries;
  }
  return cached;
}

/**
 * Whether `folded` (already NFKC-normalized and lowercased, see `foldForComparison`) is on
 * the list.
 */
export function isCommonPassword(folded: string): boolean {
  return commonPasswords().has(folded);
}

/**
 * Folds a string for case-insensitive comparison: NFKC (NIST SP 800-63B 5.1.1.2 normalization)
 * then locale-independent lowercase. Used for both sides of every comparison.
 */
export function foldForComparison(value: string): string {
  return value.normalize('NFKC').toLowerCase();
}
