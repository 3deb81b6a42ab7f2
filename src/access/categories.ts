import { CONSENT_CATEGORIES, type ConsentCategory } from './policy.ts';

/**
 * Consent categories of a clinical record, derived from its codes (ICD-10 chapters and blocks)
 * and its kind, plus any the author set explicitly. A patient may withhold a category from
 * everyone but the record's author (consent directives). Only the category names are stored,
 * on the pseudonymous side; never the code.
 */

const ICD10 = /^http:\/\/hl7\.org\/fhir\/sid\/icd-10(-cm|-nl)?$/;

/** ICD-10 code ranges per category, by the first three characters (`F10`..`F19`). */
const RANGES: readonly [ConsentCategory, string, string][] = [
  ['substance-use', 'F10', 'F19'],
  ['mental-health', 'F01', 'F09'],
  ['mental-health', 'F20', 'F99'],
  // Intentional self-harm (X60–X84) is recorded in mental-health care.
  ['mental-health', 'X60', 'X84'],
  ['substance-use', 'T51', 'T51'],
  // Infections with a predominantly sexual mode of transmission, HIV.
  ['sexual-health', 'A50', 'A64'],
  ['sexual-health', 'B20', 'B24'],
  ['sexual-health', 'Z21', 'Z21'],
  // Contraceptive management, termination of pregnancy.
  ['sexual-health', 'Z30', 'Z30'],
  ['sexual-health', 'O04', 'O04'],
];

export function categoriesOfCode(system: string, code: string): ConsentCategory[] {
  if (!ICD10.test(system)) {
    return [];
  }
  const head = code.trim().toUpperCase().slice(0, 3);
  return RANGES.filter(([, lo, hi]) => head >= lo && head <= hi).map(([c]) => c);
}

interface Coded {
  readonly system: string;
  readonly code: string;
}

/** Categories of a record body of a kind (therapy sessions and plans are mental-health care). */
export function categoriesOf(
  kind: string,
  body: unknown,
  explicit: readonly string[] = [],
): ConsentCategory[] {
  const out = new Set<ConsentCategory>();
  for (const c of explicit) {
    if ((CONSENT_CATEGORIES as readonly string[]).includes(c)) {
      out.add(c as ConsentCategory);
    }
  }
  const b = (body ?? {}) as Record<string, unknown>;
  if (
    kind === 'therapy-plan' ||
    (kind === 'encounter' && (b.type === 'therapy-session' || b.type === 'group-session'))
  ) {
    out.add('mental-health');
  }
  for (const key of ['code', 'medication'] as const) {
    const coding = b[key] as Coded | undefined;
    if (coding && typeof coding.system === 'string' && typeof coding.code === 'string') {
      for (const c of categoriesOfCode(coding.system, coding.code)) {
        out.add(c);
      }
    }
  }
  return CONSENT_CATEGORIES.filter((c) => out.has(c));
}
